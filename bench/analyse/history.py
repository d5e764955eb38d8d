"""Results over commits, per configuration and machine, with the commits where a metric
stepped (`analyse.changepoints`): what `mnist-bench history` shows.

A run file's commit is its environment's `git.commit` (with its dirty flag); a commit's place in
the series is the earliest UTC start of a run made at it, since run files do not hold commit
times. Runs at one commit pool their records: each seed is one sample (its repeats averaged) and
a commit's value is the mean over its seeds (`identity.seed_values`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_bench.analyse import changepoints
from mnist_bench.analyse.defaults import DEFAULT_ALPHA, DEFAULT_RECENT, TRACKED  # noqa: F401
from mnist_bench.analyse.rows import Row, variant_label
from mnist_bench.core import identity
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.core.metrics import Metric
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    import pandas
    from mnist_bench.runfile.index import View


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
    run_ids: tuple[str, ...] = field(hash=False)  # thousands of ids: hashed on every lookup

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

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame, one row per series, metric and commit (oldest first): the series
        (label, variant, backend, device, machine), the metric, the commit (`commit`: the full
        hash or None, `commit_label`, `time`), `value` (the mean over seeds), `seeds`, and
        `step`: the p-value of a significant step at this commit (None where none).

        Raises:
            UserError: pandas is not installed.
        """
        from mnist_bench.runfile.frame import data_frame

        out = []
        for s in self.series:
            for t in s.trends:
                steps = {step.index: step for step in t.steps}
                for i, point in enumerate(t.points):
                    step = steps.get(i)
                    out.append(
                        {
                            "label": s.label,
                            "variant": s.job.variant,
                            "backend": s.job.backend,
                            "device": s.device,
                            "machine": s.machine,
                            "metric": t.metric.name,
                            "commit": point.commit.sha,
                            "commit_label": point.commit.label,
                            "time": point.commit.started,
                            "value": point.mean,
                            "seeds": len(point.values),
                            "step": None if step is None else step.p_value,
                        }
                    )
        columns = ["label", "variant", "backend", "device", "machine", "metric", "commit",
                   "commit_label", "time", "value", "seeds", "step"]  # fmt: skip
        return data_frame(out, columns)

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
    skip_option: str = "--skip-bad",
    view: View = "summary",
) -> History:
    """Read the runs under `paths` (`collect.load_runs`, in `view`; a run without a readable
    start time is a bad file), order their commits, and find the steps of every series.

    Raises:
        UserError: a bad file (unless `skip_bad`), or no finished record.
    """
    runs = collect.load_runs(
        paths, skip_bad=skip_bad, warn=warn, skip_option=skip_option, view=view, check=_started
    )
    commit_of, commits = order_commits(runs)
    groups: dict[tuple, list[tuple[Record, Commit]]] = {}  # (configuration, machine) -> records
    fill = identity.digest_filler(r.job for loaded in runs for r in loaded.run.records)
    config_keys: dict[int, tuple] = {}  # id(job) -> its configuration: loaders share jobs
    for loaded in runs:
        machine = loaded.machine
        for record in loaded.run.records:
            if record.status != "ok" or record.repeat:  # a determinism repeat checks, not measures
                continue
            config = config_keys.get(id(record.job))
            if config is None:
                config = config_keys[id(record.job)] = fill(record.job).config_key
            key = (config, machine)
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
    env = loaded.env
    sha = env.git_commit
    if sha is not None and sha.strip():
        return (sha.strip(), bool(env.git_dirty))
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
