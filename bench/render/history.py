"""A `History` drawn: sparklines and rich tables, Markdown, one HTML page, JSON, and
the per-series figures (matplotlib only for the page and `--plot`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mnist_bench.analyse import changepoints
from mnist_bench.analyse.defaults import TRACKED
from mnist_bench.core import escape
from mnist_bench.core.metrics import Metric

if TYPE_CHECKING:  # the analysis itself is not needed to describe `history`'s options
    from matplotlib.figure import Figure
    from mnist_bench.analyse.history import Commit, History, Point, Series, Trend


SPARK = "▁▂▃▄▅▆▇█"


SPARK_WIDTH = 40  # the newest commits of a longer series


MAX_PLOTS = 24  # series drawn in the HTML page and in --plot


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
            cells = [escape.text(c) for c in line]
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
    console.print(escape.message(summary_line(history)))
    return buffer.getvalue()


def render_markdown(history: History) -> str:
    def table(header: list[str], body: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        return lines + ["| " + " | ".join(escape.markdown(c) for c in line) + " |" for line in body]

    parts = ["### mnist-bench history", "", escape.markdown(summary_line(history)), ""]
    parts += table(TREND_HEADERS, trend_rows(history))
    steps = step_rows(history)
    parts += ["", "### Steps", ""]
    parts += table(STEP_HEADERS, steps) if steps else ["No significant step."]
    return "\n".join(parts) + "\n"


def render_html(history: History) -> str:
    """One self-contained page: the tables, a figure per series (inline PNG), the commits."""
    from mnist_bench.render import html
    from mnist_bench.render.html import escape

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
    from mnist_bench.core import jsonout

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
    from mnist_bench.core import jsonout

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
        between = (xs[step.index - 1] + xs[step.index]) / 2
        ax.axvline(between, color="#b00020" if trend.worse(step) else "#1b7f3b", ls="--", lw=1)
    if trend.steps:
        means = [p.mean for p in trend.points]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            level = sum(means[lo:hi]) / (hi - lo) * scale
            ax.hlines(level, xs[lo] - 0.3, xs[hi - 1] + 0.3, color="0.3", lw=2, alpha=0.5)
    ax.set_ylabel(trend.metric.label if trend.metric.is_timing else "test accuracy (%)")
    ticks = sorted(set(xs))
    step_every = max(1, len(ticks) // 20)
    ax.set_xticks(ticks[::step_every],
                  [escape.figure_label(history.commits[i].label) for i in ticks[::step_every]],
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
    fig.suptitle(escape.figure_label(_title(series), 120), fontsize=10)
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
        sub.suptitle(escape.figure_label(_title(series), 120), fontsize=10)
    return fig
