"""`mnist-bench history`: results over commits, per configuration and machine, with the commits
where a metric stepped (`mnist_bench.analyse.changepoints`).

Reads run files and nothing else; imports no framework, and matplotlib only for `--format html`
and `--plot`. A run file's commit is its environment's `git.commit` (with its dirty flag); a
commit's place in the series is the earliest UTC start of a run made at it, since run files do
not hold commit times. Runs at one commit pool their records: each seed is one sample (its
repeats averaged) and a commit's value is the mean over its seeds (`identity.seed_values`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.analyse import changepoints
from mnist_bench.analyse.rows import METRICS, Metric, Row, variant_label
from mnist_bench.core import identity, jsonout
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What is followed over commits: accuracy on a linear scale (a step is in points), the steady
# epoch on a log scale (a step is a ratio, whatever the epoch's length).
TRACKED = tuple(m for name in ("test_accuracy", "steady_epoch_seconds") for m in METRICS
                if m.name == name)  # fmt: skip
DEFAULT_ALPHA = 0.01
DEFAULT_RECENT = 5
SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 40  # the newest commits of a longer series
MAX_PLOTS = 24  # series drawn in the HTML page and in --plot

EPILOG = f"""examples:
  mnist-bench history results/runs                     a trend per configuration and machine
  mnist-bench history ci-runs/ --format markdown >> "$GITHUB_STEP_SUMMARY"
  mnist-bench history ci-runs/ --fail-on-step          CI: exit 1 on a worse step lately
  mnist-bench history ci-runs/ --format html -o history.html --plot history.png

A step is the commit where a metric's level changed: the largest two-sample t over every split
of the per-commit means (accuracy; the logarithm of the steady epoch seconds), its p-value
simulated from independent normal values of the same count, and each side searched again where
a step is significant (binary segmentation). Timings of contended or unstable records are left
out. A series needs {changepoints.MIN_POINTS} commits to be tested.

exit codes: 0 ok; 1 --fail-on-step found a worse step (accuracy down, time up) in the latest
--recent commits; 2 a bad file (see --skip-bad) or option."""

# --format json: the keys, stable (a key is only ever added), as `--help` documents them.
JSON_KEYS = """--format json prints one object (keys are only ever added; non-finite numbers null):
  {command: history, runs (the RUN arguments), files (the run files read), alpha, warnings,
  commits, series, fail_on_step}
  commits, oldest first: {commit (the full hash; null for a run without one), label (as the
    tables show it), dirty, time (UTC, the first run at it), run_ids}
  series: {label, variant, backend, device, dataset, machine, configuration (every field of
    the job but the seed), tested {METRIC: had enough commits to be tested}, points, steps}
  points, in commit order: {commit, label, time, METRIC (the mean over seeds; null where
    none), values {METRIC: one value per seed}}
  steps, in commit order: {commit, label, time, metric, before, after, size (after - before),
    relative (size / before), p_value, direction (worse or better)}
  fail_on_step: null without --fail-on-step; else {recent, failed, reason (why, or null),
    steps (the worse steps it fails on: a step's keys and series {label, variant, backend,
    device, machine})}
  METRIC: """ + ", ".join(m.name for m in TRACKED)


@dataclass(frozen=True)
class Commit:
    """A commit the runs were made at, or a run without one (no git, or an unknown commit).

    Attributes:
        sha: the full commit hash; None when the run recorded none.
        dirty: the working tree had uncommitted changes (a point of its own).
        started: the earliest UTC start of a run at it: its place in the order.
        run_ids: the runs made at it.
    """

    sha: str | None
    dirty: bool
    started: datetime
    run_ids: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.sha is None:
            return f"run {self.run_ids[0]}"
        return self.sha[:7] + ("+dirty" if self.dirty else "")

    @property
    def when(self) -> str:
        return self.started.strftime("%Y-%m-%d %H:%M")


@dataclass
class Point:
    """One commit of a series: one value per seed."""

    commit: Commit
    values: list[float]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


@dataclass
class Trend:
    """One metric of one series over its commits, with its steps."""

    metric: Metric
    points: list[Point]
    steps: list[changepoints.Step] = field(default_factory=list)

    def commit_of(self, step: changepoints.Step) -> Commit:
        return self.points[step.index].commit

    def worse(self, step: changepoints.Step) -> bool:
        return (step.size < 0) == self.metric.higher_is_better

    @property
    def tested(self) -> bool:
        return len(self.points) >= changepoints.MIN_POINTS


@dataclass
class Series:
    """One configuration (`Job.config_key`) on one machine."""

    job: Job
    device: str  # where it ran
    machine: str
    label: str  # the variant, and the settings that tell its configurations apart
    trends: list[Trend]


@dataclass
class History:
    """What every format renders."""

    runs: list[collect.LoadedRun]
    commits: list[Commit]  # oldest first
    series: list[Series]
    alpha: float

    def recent(self, count: int) -> set[Commit]:
        """The newest `count` commits of all the runs (0: every commit)."""
        return set(self.commits[-count:] if count else self.commits)

    def steps(self) -> list[tuple[Series, Trend, changepoints.Step]]:
        return [(s, t, step) for s in self.series for t in s.trends for step in t.steps]

    def failing(self, recent: int) -> list[tuple[Series, Trend, changepoints.Step]]:
        """Worse steps at one of the newest `recent` commits (0: at any commit)."""
        window = self.recent(recent)
        return [
            (s, t, step)
            for s, t, step in self.steps()
            if t.worse(step) and t.commit_of(step) in window
        ]


# ------------------------------------------------------------------------------ building
def build(
    paths: Sequence[str | Path],
    *,
    alpha: float = DEFAULT_ALPHA,
    skip_bad: bool = False,
    warn: Callable[[str], None] | None = None,
) -> History:
    """Read the runs under `paths`, order their commits, and find the steps of every series.

    Raises:
        UserError: a bad file (unless `skip_bad`), or no finished record.
    """
    runs = []
    for loaded in collect.unique_runs(collect.load_runs(paths, skip_bad=skip_bad, warn=warn), warn):
        try:
            _started(loaded)
        except UserError as exc:
            if not skip_bad:
                raise UserError(f"{exc} (pass --skip-bad to skip bad files)") from None
            if warn is not None:
                warn(f"skipped {exc}")
            continue
        runs.append(loaded)
    commit_of, commits = order_commits(runs)
    groups: dict[tuple, list[tuple[Record, Commit]]] = {}  # (configuration, machine) -> records
    for loaded in runs:
        machine = loaded.machine
        for record in loaded.run.records:
            if record.status != "ok" or record.repeat:  # a determinism repeat checks, not measures
                continue
            key = (record.job.config_key, machine)
            groups.setdefault(key, []).append((record, commit_of[loaded.run.run_id]))
    if not groups:
        raise UserError("no finished (ok) records in: " + ", ".join(str(p) for p in paths))
    position = {c: i for i, c in enumerate(commits)}
    label_rows = [
        Row(pairs[0][0].variant, "", "", pairs[0][0].settings, [pairs[0][0]], "ok")
        for pairs in groups.values()
    ]
    series = []
    for ((_, machine), pairs), row in zip(groups.items(), label_rows, strict=True):
        trends = [_trend(metric, pairs, position, alpha) for metric in TRACKED]
        first = pairs[0][0]
        series.append(
            Series(first.job, first.where, machine, variant_label(row, label_rows), trends)
        )
    series.sort(key=lambda s: (s.job.variant, s.job.backend, s.device, s.machine, s.label))
    return History(runs, commits, series, alpha)


def _trend(
    metric: Metric, pairs: list[tuple[Record, Commit]], position: dict[Commit, int], alpha: float
) -> Trend:
    def value(record: Record) -> float | None:
        if metric.is_timing and (record.contended or record.unstable):
            return None  # not a measurement of the code: compare and check leave them out too
        return getattr(record, metric.name)

    by_commit: dict[Commit, list[Record]] = {}
    for record, commit in pairs:
        by_commit.setdefault(commit, []).append(record)
    points = []
    for commit in sorted(by_commit, key=position.__getitem__):
        values = identity.seed_values(by_commit[commit], value)
        if values:
            points.append(Point(commit, values))
    trend = Trend(metric, points)
    if trend.tested:
        means = [p.mean for p in points]
        trend.steps = changepoints.detect(means, alpha=alpha, log=metric.is_timing)
    return trend


def _started(loaded: collect.LoadedRun) -> datetime:
    text = loaded.run.started_utc
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{loaded.path}: started_utc {text[:40]!r} is not an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        raise UserError(f"{loaded.path}: started_utc {text[:40]!r} has no time zone (UTC: a Z)")
    return when


def _commit_key(loaded: collect.LoadedRun) -> tuple:
    git = loaded.run.environment.get("git") or {}
    sha = git.get("commit")
    if isinstance(sha, str) and sha.strip():
        return (sha.strip(), bool(git.get("dirty")))
    return (None, loaded.run.run_id)  # no commit: a point of its own


def order_commits(runs: Sequence[collect.LoadedRun]) -> tuple[dict[str, Commit], list[Commit]]:
    """Each run's commit (by run id), and the commits oldest first: by the earliest UTC start
    of a run at each (ties: by hash, so the order never depends on the order of the files)."""
    members: dict[tuple, list[collect.LoadedRun]] = {}
    for loaded in runs:
        members.setdefault(_commit_key(loaded), []).append(loaded)
    commit_of: dict[str, Commit] = {}
    for key, group in members.items():
        group.sort(key=_started)
        sha, second = key
        commit = Commit(
            sha,
            bool(second) if sha is not None else False,
            _started(group[0]),
            tuple(g.run.run_id for g in group),
        )
        for loaded in group:
            commit_of[loaded.run.run_id] = commit
    commits = sorted(set(commit_of.values()), key=lambda c: (c.started, c.label))
    return commit_of, commits


# ------------------------------------------------------------------------------ text
def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """`▁▃█▆`: each value's height between the series' least and greatest; the newest `width`
    values of a longer series, after an ellipsis."""
    shown = list(values)[-width:]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low
    marks = [
        SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))] if span else SPARK[3]
        for v in shown
    ]
    return ("…" if len(values) > width else "") + "".join(marks)


def format_value(metric: Metric, value: float) -> str:
    return f"{value:.4f}" if not metric.is_timing else f"{value:.3f}"


def format_change(metric: Metric, before: float, after: float) -> str:
    """Accuracy in points (`-0.50 pt`), a timing as a ratio (`+10.2%`)."""
    if not metric.is_timing:
        return f"{(after - before) * 100:+.2f} pt"
    return f"{(after / before - 1) * 100:+.1f}%" if before else "-"


def format_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def step_text(trend: Trend, step: changepoints.Step) -> str:
    """`abc1234 -0.50 pt (p <0.001, worse)`."""
    verdict = "worse" if trend.worse(step) else "better"
    change = format_change(trend.metric, step.before, step.after)
    return f"{trend.commit_of(step).label} {change} (p {format_p(step.p_value)}, {verdict})"


TREND_HEADERS = [
    "configuration", "backend", "device", "machine", "metric", "commits", "trend", "first",
    "last", "change", "steps",
]  # fmt: skip
STEP_HEADERS = [
    "commit", "when (UTC)", "configuration", "backend", "device", "machine", "metric", "before",
    "after", "change", "p", "direction",
]  # fmt: skip


def trend_cells(series: Series, trend: Trend) -> list[str]:
    points = trend.points
    common = [series.label, series.job.backend, series.device, series.machine, trend.metric.label]
    if not points:
        return [*common, "0", "", "-", "-", "-", "no values"]
    first, last = points[0].mean, points[-1].mean
    if not trend.tested:
        steps = f"- (a test needs {changepoints.MIN_POINTS} commits)"
    else:
        steps = "; ".join(step_text(trend, s) for s in trend.steps) or "none"
    return [
        *common,
        str(len(points)),
        sparkline([p.mean for p in points]),
        format_value(trend.metric, first),
        format_value(trend.metric, last),
        format_change(trend.metric, first, last) if len(points) > 1 else "-",
        steps,
    ]


def step_cells(series: Series, trend: Trend, step: changepoints.Step) -> list[str]:
    commit, metric = trend.commit_of(step), trend.metric
    return [
        commit.label,
        commit.when,
        series.label,
        series.job.backend,
        series.device,
        series.machine,
        metric.label,
        format_value(metric, step.before),
        format_value(metric, step.after),
        format_change(metric, step.before, step.after),
        format_p(step.p_value),
        "worse" if trend.worse(step) else "better",
    ]


def summary_line(history: History) -> str:
    commits = history.commits
    span = f"{commits[0].when} to {commits[-1].when} UTC" if commits else ""
    return (
        f"{len(history.runs)} run file(s) at {len(commits)} commit(s), {span}; "
        f"{len(history.series)} configuration(s) and machine(s); per-commit values are means over "
        f"seeds; a step is significant at p < {history.alpha:g}; timings of contended or "
        "unstable records left out."
    )


def trend_rows(history: History) -> list[list[str]]:
    return [trend_cells(s, t) for s in history.series for t in s.trends]


def step_rows(history: History) -> list[list[str]]:
    return [step_cells(s, t, step) for s, t, step in history.steps()]


def rich_tables(history: History, *, color: bool = True) -> list:
    """The trend table and, if any step was found, the table of steps."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    style = box.SIMPLE_HEAVY if color else box.ASCII
    out = []
    for title, header, body, left in (
        ("mnist-bench history", TREND_HEADERS, trend_rows(history), 6),
        ("steps (oldest first)", STEP_HEADERS, step_rows(history), 7),
    ):
        if not body:
            continue
        table = Table(title=title, box=style)
        for i, name in enumerate(header):
            numeric = i >= left and name not in ("steps", "trend", "direction")
            table.add_column(name, justify="right" if numeric else "left")
        for line in body:
            cells = [Text(c) for c in line]
            if color and header is STEP_HEADERS:
                cells[-1].stylize("bold red" if line[-1] == "worse" else "green")
            table.add_row(*cells)
        out.append(table)
    return out


def render_table(history: History) -> str:
    """The tables as plain ASCII text (for files and pipes)."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=240, no_color=True)
    for table in rich_tables(history, color=False):
        console.print(table)
    console.print(summary_line(history), highlight=False)
    return buffer.getvalue()


def render_markdown(history: History) -> str:
    from mnist_bench.render.markdown import escape

    def table(header: list[str], body: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        return lines + ["| " + " | ".join(escape(c) for c in line) + " |" for line in body]

    parts = ["### mnist-bench history", "", summary_line(history), ""]
    parts += table(TREND_HEADERS, trend_rows(history))
    steps = step_rows(history)
    parts += ["", "### Steps", ""]
    parts += table(STEP_HEADERS, steps) if steps else ["No significant step."]
    return "\n".join(parts) + "\n"


def render_html(history: History) -> str:
    """One self-contained page: the tables, a figure per series (inline PNG), the commits."""
    from html import escape

    from mnist_bench.render import html

    steps = step_rows(history)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>mnist-bench history</title>',
        f"<style>{html.STYLE}</style></head><body>",
        "<h1>mnist-bench history</h1>",
        f'<p class="note">{escape(summary_line(history))}</p>',
        "<h2>Trends</h2>",
        html.table(
            TREND_HEADERS, trend_rows(history), numeric={"commits", "first", "last", "change"}
        ),
        "<h2>Steps</h2>",
        html.table(
            STEP_HEADERS,
            steps,
            numeric={"before", "after", "change", "p"},
            classes=["failed" if line[-1] == "worse" else "" for line in steps],
        )
        if steps
        else "<p>No significant step.</p>",
    ]
    drawn = [s for s in history.series if any(t.points for t in s.trends)][:MAX_PLOTS]
    if drawn:
        parts += [
            "<h2>Over commits</h2>",
            '<p class="note">Dots: each seed; line: the mean per commit; dashed: a step (red '
            "worse, green better), with each level's mean."
            + (f" The first {MAX_PLOTS} series are shown." if len(drawn) == MAX_PLOTS else "")
            + "</p>",
            '<div class="grid">',
            *(
                f"<figure>{html.figure_image(series_figure(history, s), _title(s))}</figure>"
                for s in drawn
            ),
            "</div>",
        ]
    commits = [
        [str(i + 1), c.label, c.when, ", ".join(c.run_ids)] for i, c in enumerate(history.commits)
    ]
    parts += [
        "<h2>Commits, oldest first</h2>",
        html.table(["#", "commit", "first run (UTC)", "run files"], commits, numeric={"#"}),
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


FORMATS: dict[str, Callable[[History], str]] = {
    "table": render_table,
    "markdown": render_markdown,
    "html": render_html,
}


# ------------------------------------------------------------------------------ json
def _commit_dict(commit: Commit) -> dict[str, Any]:
    return {"commit": commit.sha, "label": commit.label, "time": jsonout.utc(commit.started)}


def _step_dict(trend: Trend, step: changepoints.Step) -> dict[str, Any]:
    return {
        **_commit_dict(trend.commit_of(step)),
        "metric": trend.metric.name,
        "before": step.before,
        "after": step.after,
        "size": step.size,
        "relative": step.relative,
        "p_value": step.p_value,
        "direction": "worse" if trend.worse(step) else "better",
    }


def _series_dict(history: History, series: Series) -> dict[str, Any]:
    position = {c: i for i, c in enumerate(history.commits)}
    by_commit: dict[Commit, dict[str, Point]] = {}
    for trend in series.trends:
        for point in trend.points:
            by_commit.setdefault(point.commit, {})[trend.metric.name] = point
    points = []
    for commit in sorted(by_commit, key=position.__getitem__):
        found = by_commit[commit]
        means = {m.name: found[m.name].mean if m.name in found else None for m in TRACKED}
        values = {m.name: found[m.name].values if m.name in found else [] for m in TRACKED}
        points.append({**_commit_dict(commit), **means, "values": values})
    steps = sorted(
        ((position[t.commit_of(step)], i, t, step) for i, t in enumerate(series.trends)
         for step in t.steps),
        key=lambda item: item[:2],
    )  # fmt: skip
    return {
        **_series_identity(series),
        "dataset": series.job.dataset,
        "configuration": series.job.fields(),
        "tested": {t.metric.name: t.tested for t in series.trends},
        "points": points,
        "steps": [_step_dict(t, step) for _, _, t, step in steps],
    }


def _series_identity(series: Series) -> dict[str, Any]:
    return {
        "label": series.label,
        "variant": series.job.variant,
        "backend": series.job.backend,
        "device": series.device,
        "machine": series.machine,
    }


def render_json(
    history: History,
    *,
    runs: Sequence[str],
    warnings: Sequence[str] = (),
    recent: int | None = None,
) -> str:
    """The `--format json` object (the keys `JSON_KEYS` documents); `recent` is --recent with
    --fail-on-step, None without."""
    fail_on_step = None
    if recent is not None:
        failing = history.failing(recent)
        fail_on_step = {
            "recent": recent,
            "failed": bool(failing),
            "reason": fail_reason(failing, recent) if failing else None,
            "steps": [
                {**_step_dict(t, step), "series": _series_identity(s)} for s, t, step in failing
            ],
        }
    return jsonout.dumps(
        {
            "command": "history",
            "runs": [str(r) for r in runs],
            "files": [str(loaded.path) for loaded in history.runs],
            "alpha": history.alpha,
            "warnings": list(warnings),
            "commits": [
                {**_commit_dict(c), "dirty": c.dirty, "run_ids": list(c.run_ids)}
                for c in history.commits
            ],
            "series": [_series_dict(history, s) for s in history.series],
            "fail_on_step": fail_on_step,
        }
    )


def fail_reason(failing: Sequence[tuple[Series, Trend, changepoints.Step]], recent: int) -> str:
    """`2 worse step(s) at the latest 5 commit(s)`."""
    where = f"the latest {recent} commit(s)" if recent else "any commit"
    return f"{len(failing)} worse step(s) at {where}"


# ------------------------------------------------------------------------------ plots
def _title(series: Series) -> str:
    return f"{series.label} · {series.job.backend} · {series.device} · {series.machine}"


def _draw(ax, history: History, trend: Trend) -> None:
    """One metric of one series against the commits (x: the commit's place among all)."""
    position = {c: i for i, c in enumerate(history.commits)}
    xs = [position[p.commit] for p in trend.points]
    scale = 1.0 if trend.metric.is_timing else 100.0
    for x, point in zip(xs, trend.points, strict=True):
        ax.scatter([x] * len(point.values), [v * scale for v in point.values], s=10,
                   color="0.6", zorder=2)  # fmt: skip
    ax.plot(xs, [p.mean * scale for p in trend.points], marker="o", ms=4, lw=1.2, zorder=3)
    bounds = [0, *(s.index for s in trend.steps), len(trend.points)]
    for step in trend.steps:
        x = (xs[step.index - 1] + xs[step.index]) / 2
        ax.axvline(x, color="#b00020" if trend.worse(step) else "#1b7f3b", ls="--", lw=1)
    if trend.steps:
        means = [p.mean for p in trend.points]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            level = sum(means[lo:hi]) / (hi - lo) * scale
            ax.hlines(level, xs[lo] - 0.3, xs[hi - 1] + 0.3, color="0.3", lw=2, alpha=0.5)
    ax.set_ylabel(trend.metric.label if trend.metric.is_timing else "test accuracy (%)")
    ticks = sorted(set(xs))
    step_every = max(1, len(ticks) // 20)
    ax.set_xticks(ticks[::step_every], [history.commits[i].label for i in ticks[::step_every]],
                  rotation=90, fontsize=7)  # fmt: skip
    ax.grid(alpha=0.3)


def series_figure(history: History, series: Series) -> Figure:
    """Accuracy and steady epoch time of one series against commit."""
    from matplotlib.figure import Figure
    from mnist_bench.render.figures import DPI

    fig = Figure(figsize=(11, 3.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(series.trends))
    for ax, trend in zip(axes, series.trends, strict=True):
        if trend.points:
            _draw(ax, history, trend)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(trend.metric.label, fontsize=9)
    fig.suptitle(_title(series), fontsize=10)
    return fig


def plot_grid(history: History) -> Figure:
    """Every series (at most `MAX_PLOTS`) in one figure: a row each, a column per metric."""
    from matplotlib.figure import Figure
    from mnist_bench.render.figures import DPI

    drawn = history.series[:MAX_PLOTS]
    fig = Figure(figsize=(12, 3.2 * len(drawn)), dpi=DPI, layout="constrained")
    rows = fig.subfigures(len(drawn), 1, squeeze=False)[:, 0]
    for sub, series in zip(rows, drawn, strict=True):
        axes = sub.subplots(1, len(series.trends))
        for ax, trend in zip(axes, series.trends, strict=True):
            if trend.points:
                _draw(ax, history, trend)
            ax.set_title(trend.metric.label, fontsize=9)
        sub.suptitle(_title(series), fontsize=10)
    return fig


# ------------------------------------------------------------------------------ command
def add_history(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG + "\n\n" + JSON_KEYS
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("runs", nargs="+", metavar="RUN", help="run files or folders of them")
    p.add_argument(
        "--format",
        choices=[*FORMATS, "json"],
        default="table",
        help="table (rich; plain ASCII when piped), markdown (GitHub tables), html (one "
        "self-contained page with a figure per series) or json (one object, keys below)",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw accuracy and steady epoch time against commit, every series, as a PNG",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="warn about and skip bad run files instead of stopping",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        metavar="P",
        help=f"a step is significant below this p-value (default {DEFAULT_ALPHA:g})",
    )
    p.add_argument(
        "--fail-on-step",
        action="store_true",
        help="exit 1 when a significant worse step (accuracy down, steady epoch time up) is at "
        "one of the latest --recent commits",
    )
    p.add_argument(
        "--recent",
        type=int,
        default=DEFAULT_RECENT,
        metavar="N",
        help=f"with --fail-on-step: the newest N commits of all the runs count (default "
        f"{DEFAULT_RECENT}; 0: a worse step at any commit fails)",
    )


def _check_target(path: Path, option: str, inputs: Sequence[Path]) -> None:
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder")
    if path.exists() and any(path.resolve() == p.resolve() for p in inputs):
        raise UserError(f"{option} {path}: is one of the run files read; not overwritten")


def cmd_history(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha:g} is not between 0 and 1")
    if args.recent < 0:
        raise UserError(f"--recent {args.recent} is negative (0: every commit)")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UserError(f"--plot {args.plot}: writes a PNG; name a .png file")
    if args.format == "html" and not args.output and sys.stdout.isatty():
        raise UserError("--format html writes a whole page: give --output FILE (or pipe it)")

    warnings: list[str] = []

    def warn(message: str) -> None:
        print(f"mnist-bench history: warning: {message}", file=sys.stderr)
        warnings.append(message)

    history = build(args.runs, alpha=args.alpha, skip_bad=args.skip_bad, warn=warn)
    inputs = [loaded.path for loaded in history.runs]
    targets = [(args.output, "--output"), (args.plot, "--plot")]
    for target, option in targets:
        if target:
            _check_target(Path(target), option, inputs)
    if not any(t.tested for s in history.series for t in s.trends):
        warn(f"no series has {changepoints.MIN_POINTS} commits with values: nothing was tested")

    from mnist_bench.runfile.storage import write_atomic

    if args.format == "table" and not args.output:
        from mnist_bench.core.console import make_console

        console = make_console()
        for table in rich_tables(history, color=console.is_terminal):
            console.print(table)
        console.print(summary_line(history), highlight=False)
    else:
        if args.format == "json":
            recent = args.recent if args.fail_on_step else None
            text = render_json(history, runs=args.runs, warnings=warnings, recent=recent)
        else:
            text = FORMATS[args.format](history)
        if args.output:
            write_atomic(Path(args.output), text.encode(), what="history")
            print(f"history: {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    if args.plot:
        from mnist_bench.render.figures import png

        write_atomic(Path(args.plot), png(plot_grid(history)), what="plot")
        print(f"plot: {args.plot}", file=sys.stderr)

    if args.fail_on_step:
        failing = history.failing(args.recent)
        for series, trend, step in failing:
            print(
                f"mnist-bench history: worse step at {trend.commit_of(step).label}: "
                f"{_title(series)}: {trend.metric.label} "
                f"{format_value(trend.metric, step.before)} -> "
                f"{format_value(trend.metric, step.after)} "
                f"({format_change(trend.metric, step.before, step.after)}, "
                f"p {format_p(step.p_value)})",
                file=sys.stderr,
            )
        if failing:
            print(f"mnist-bench history: {fail_reason(failing, args.recent)}", file=sys.stderr)
            return 1
    return 0
