"""Match configurations across two sets of records and judge each change. Pure functions.

A row is one configuration: (dataset, variant, backend, device), plus the training settings when
one side holds the same configuration with several settings (a suite grid). Verdicts per metric:

- both sides have at least two seeds: Welch's two-sample t-test at 95% on the per-seed values;
- otherwise: thresholds, `accuracy_tolerance` (absolute) and `time_tolerance` (relative).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench import stats
from bench.records import Record, settings_key

BETTER, WORSE, SAME = "better", "worse", "no significant change"


@dataclass(frozen=True)
class Metric:
    name: str  # Record attribute
    label: str
    higher_is_better: bool
    is_timing: bool  # judged with the time tolerance; meaningless for contended records


METRICS = (
    Metric("test_accuracy", "accuracy", True, False),
    Metric("train_seconds", "train s", False, True),
    Metric("train_samples_per_second", "train samples/s", True, True),
    Metric("infer_samples_per_second", "infer samples/s", True, True),
)
ACCURACY = METRICS[0]


@dataclass(frozen=True)
class Tolerances:
    accuracy: float = 0.005  # absolute, test accuracy
    time: float = 0.10  # relative, timing metrics
    confidence: float = 0.95


@dataclass
class Change:
    """One metric of one matched row."""

    metric: Metric
    base: list[float]
    new: list[float]
    verdict: str = SAME
    p_value: float | None = None  # Welch; None when a side has fewer than two seeds
    skipped: str | None = None  # why no verdict (e.g. contended timing)

    @property
    def base_mean(self) -> float | None:
        return sum(self.base) / len(self.base) if self.base else None

    @property
    def new_mean(self) -> float | None:
        return sum(self.new) / len(self.new) if self.new else None

    @property
    def delta(self) -> float | None:
        if self.base_mean is None or self.new_mean is None:
            return None
        return self.new_mean - self.base_mean

    @property
    def relative(self) -> float | None:
        if self.delta is None or not self.base_mean:
            return None
        return self.delta / abs(self.base_mean)


@dataclass
class Row:
    key: tuple[str, ...]  # dataset, variant, backend, device[, settings]
    base: list[Record] = field(default_factory=list)
    new: list[Record] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def label(self) -> dict[str, str]:
        names = ("dataset", "variant", "backend", "device", "settings")
        return dict(zip(names, self.key, strict=False))

    @property
    def side(self) -> str:
        """both, base (only in BASE) or new (only in NEW)."""
        return "both" if self.base and self.new else ("base" if self.base else "new")

    @property
    def failed_new(self) -> list[Record]:
        return [r for r in self.new if r.status in ("failed", "diverged")]

    @property
    def verdict(self) -> str:
        if self.failed_new:
            return WORSE
        verdicts = {c.verdict for c in self.changes if c.skipped is None}
        if WORSE in verdicts:
            return WORSE
        return BETTER if BETTER in verdicts else SAME

    def change(self, metric: Metric | str) -> Change | None:
        """The change of `metric` (a Metric or its Record attribute name)."""
        name = metric if isinstance(metric, str) else metric.name
        return next((c for c in self.changes if c.metric.name == name), None)


def match(base: Iterable[Record], new: Iterable[Record]) -> list[Row]:
    """Pair the configurations of `base` and `new`; rows on one side only are kept."""
    base = [r for r in base if not r.repeat and r.status != "skipped"]
    new = [r for r in new if not r.repeat and r.status != "skipped"]
    settings: dict[tuple, set[str]] = defaultdict(set)
    for side in (base, new):
        per_side: dict[tuple, set[str]] = defaultdict(set)
        for r in side:
            per_side[(r.dataset, r.variant, r.backend, r.device)].add(settings_key(r.settings))
        for k, texts in per_side.items():
            if len(texts) > 1:
                settings[k] |= texts
    rows: dict[tuple, Row] = {}

    def key(r: Record) -> tuple:
        k = (r.dataset, r.variant, r.backend, r.device)
        return (*k, settings_key(r.settings)) if k in settings else k

    for r in base:
        rows.setdefault(key(r), Row(key(r))).base.append(r)
    for r in new:
        rows.setdefault(key(r), Row(key(r))).new.append(r)
    return list(rows.values())


def judge(row: Row, tol: Tolerances = Tolerances()) -> Row:
    """Fill `row.changes` with a verdict per metric (rows on both sides only)."""
    row.changes = []
    if row.side != "both":
        return row
    base_ok = [r for r in row.base if r.status == "ok"]
    new_ok = [r for r in row.new if r.status == "ok"]
    contended = any(r.contended for r in base_ok + new_ok)
    for metric in METRICS:
        change = Change(metric, _values(base_ok, metric), _values(new_ok, metric))
        if not change.base or not change.new:
            change.skipped = "no values"
        elif metric.is_timing and contended:
            change.skipped = "contended"
        else:
            change.verdict, change.p_value = _verdict(change, tol)
        row.changes.append(change)
    return row


def _values(records: list[Record], metric: Metric) -> list[float]:
    return [float(v) for r in records if (v := getattr(r, metric.name)) is not None]


def _verdict(change: Change, tol: Tolerances) -> tuple[str, float | None]:
    metric, delta = change.metric, change.delta
    improved = delta > 0 if metric.higher_is_better else delta < 0
    p = stats.welch_p_value(change.base, change.new)
    if p is not None:
        significant = p < 1 - tol.confidence
    elif metric.is_timing:
        significant = change.relative is not None and abs(change.relative) > tol.time
    else:
        significant = abs(delta) > tol.accuracy
    if not significant or delta == 0:
        return SAME, p
    return (BETTER if improved else WORSE), p


def compare(
    base: Iterable[Record], new: Iterable[Record], tol: Tolerances = Tolerances()
) -> list[Row]:
    return [judge(row, tol) for row in match(base, new)]


@dataclass(frozen=True)
class Failure:
    row: Row
    reason: str


def gate(
    rows: list[Row], tol: Tolerances = Tolerances(), max_slowdown: float | None = None
) -> list[Failure]:
    """The CI gate's failing rows.

    A matched row fails when its run failed or diverged, or when its mean test accuracy fell by
    more than `tol.accuracy` and, where both sides have two or more seeds, Welch's test also
    calls the drop significant: a drop must matter in size and be more than noise. With
    `max_slowdown` (e.g. 0.25), a row also fails when its training or inference throughput fell
    by more than that fraction; contended records never fail on timing.
    """
    failures: list[Failure] = []
    for row in rows:
        if row.side != "both":
            continue
        if row.failed_new:
            r = row.failed_new[0]
            failures.append(Failure(row, f"{r.status}: {r.error or 'no result'}"))
            continue
        acc = row.change(ACCURACY)
        if acc is None or acc.skipped:
            failures.append(Failure(row, "no accuracy in the new results"))
            continue
        significant = acc.p_value is None or acc.p_value < 1 - tol.confidence
        if acc.delta < -tol.accuracy and significant:
            why = f"accuracy {acc.delta:+.4f}"
            if acc.p_value is not None:
                why += f" (Welch p={acc.p_value:.2g})"
            failures.append(Failure(row, why))
            continue
        if max_slowdown is None:
            continue
        for metric in (METRICS[2], METRICS[3]):
            c = row.change(metric)
            if c and not c.skipped and c.relative is not None and c.relative < -max_slowdown:
                failures.append(
                    Failure(row, f"{metric.label} {c.relative:+.0%} (limit -{max_slowdown:.0%})")
                )
                break
    return failures
