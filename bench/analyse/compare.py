"""Match configurations across two sets of records and judge each change. Pure functions.

A row is one configuration (`core.identity`: dataset, variant, backend, requested device and
every training setting), so no verdict is ever given between unlike configurations: a row on
one side only says how the other side's nearest configuration differs (`epochs 2 → 5`).
`on=("variant", "backend", "device")` matches on those fields alone, on purpose, and every row
then shows the settings that differ. Verdicts per metric, on one value per seed (repeats of a
seed averaged):

- both sides have at least two seeds: Welch's two-sample t-test at 95%;
- otherwise: thresholds, `accuracy_tolerance` (absolute) and `time_tolerance` (relative).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mnist_bench.core import identity, stats
from mnist_bench.core.config import check_value
from mnist_bench.core.identity import Job
from mnist_bench.core.metrics import ACCURACY, HEADLINE, Metric
from mnist_bench.runfile.machine import node_key
from mnist_bench.runfile.records import Record

BETTER, WORSE, SAME = "better", "worse", "no significant change"


METRICS = HEADLINE  # what compare judges: the metrics every table shows
THROUGHPUT = tuple(m for m in METRICS if m.throughput)


@dataclass(frozen=True)
class Tolerances:
    accuracy: float = 0.005  # absolute, test accuracy
    time: float = 0.10  # relative, timing metrics
    confidence: float = 0.95


# The rules of compare's and check's options, by the API's keyword: `mnist-bench compare` and
# `check` hold their flags to them, the API its keywords (`check_gate_options`). A NaN or a
# negative tolerance would let every drop through.
GATE_CHECKS: dict[str, dict[str, Any]] = {
    "accuracy_tolerance": {"kind": "number", "min": 0, "max": 1},
    "time_tolerance": {"kind": "number", "min": 0, "max": 10},
    "max_slowdown": {"kind": "number", "min": 0, "max": 1, "optional": True},
    "allow_missing": {"kind": "bool"},
    "skip_bad": {"kind": "bool"},
    "pooled_alpha": {"kind": "number", "above": 0, "max": 0.5, "optional": True},
}


def check_gate_options(
    values: dict[str, Any], name: Callable[[str], str] = lambda keyword: keyword
) -> None:
    """Raise `ConfigError` (a `UserError`: one line) naming the first of `values` (keyword ->
    value, keywords of `GATE_CHECKS`) that breaks its rule; `name` is what the message calls
    a keyword (the API's keyword, or the command's flag)."""
    for keyword, value in values.items():
        check_value(name(keyword), value, GATE_CHECKS[keyword])


@dataclass
class Change:
    """One metric of one matched row."""

    metric: Metric
    base: list[float]
    new: list[float]
    verdict: str = SAME
    p_value: float | None = None  # Welch; None when a side has fewer than two seeds
    skipped: str | None = None  # why no verdict (e.g. contended or unstable timing)
    left_out: int = 0  # timing: flagged records left out, the rest judged (`judge`)

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
    key: tuple  # the match key: the configuration, or the fields matched on
    base: list[Record] = field(default_factory=list)
    new: list[Record] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # fields differing across the sides
    near: list[str] = field(default_factory=list)  # one side only: how the other side differs
    machine: str = ""  # the node, where a side spans several machines (`machine_of`)
    on: Sequence[str] | None = None  # the fields matched on; None: the whole configuration

    @property
    def job(self) -> Job:
        return (self.base or self.new)[0].job

    @property
    def label(self) -> dict[str, str]:
        job, records = self.job, self.base + self.new
        where = ",".join(dict.fromkeys(r.where for r in records if r.device)) or job.device
        label = {"dataset": job.dataset, "variant": job.variant, "backend": job.backend}
        label["device"] = where
        if self.machine:
            label["machine"] = self.machine
        return label

    @property
    def side(self) -> str:
        """both, base (only in BASE) or new (only in NEW)."""
        return "both" if self.base and self.new else ("base" if self.base else "new")

    @property
    def failed_new(self) -> list[Record]:
        """New records that did not finish where the baseline has a result."""
        if not any(r.status == "ok" for r in self.base):
            return []
        return [r for r in self.new if r.status != "ok"]

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


def match(
    base: Iterable[Record], new: Iterable[Record], on: Sequence[str] | None = None
) -> list[Row]:
    """Pair the configurations of `base` and `new` (or, with `on`, the records that agree on
    those fields); rows on one side only are kept, with how the nearest configuration on the
    other side differs.

    Where a side's records came from several machines (`--executor ray`, each record naming
    its node), rows are per machine too: records of one job on two machines are not seeds of
    one sample. They match the other side's records from the same machine, or, where the
    other side ran on one machine, all of its records. Two sides of one machine each (the
    usual cross-machine comparison) match across machines."""
    sides = {"base": list(base), "new": list(new)}
    machines = {side: sorted({machine_of(r) for r in rs}) for side, rs in sides.items()}
    fill = identity.digest_filler(r.job for rs in sides.values() for r in rs)
    rows: dict[tuple, Row] = {}
    for side, records in sides.items():
        other = machines["new" if side == "base" else "base"]
        for r in records:
            if r.repeat:  # the second process of --check-determinism: a check, not a sample
                continue
            if len(machines[side]) > 1:
                targets = [machine_of(r)]
            else:  # one machine: compared with each of the other side's, if it has several
                targets = other if len(other) > 1 else [""]
            for machine in targets:
                key = identity.match_key(fill(r.job), on) + ((machine,) if machine else ())
                row = rows.setdefault(key, Row(key, machine=machine, on=on))
                getattr(row, side).append(r)
    out = list(rows.values())
    for row in out:
        if row.side == "both":
            where = {r.where for r in row.base if r.device} ^ {r.where for r in row.new if r.device}
            row.differences = identity.differences(
                [r.job for r in row.base], [r.job for r in row.new], skip=on or ()
            )
            if where:  # auto resolved to cpu on one side, gpu on the other
                row.differences.append(f"ran on {_ran_on(row.base)} → {_ran_on(row.new)}")
            continue
        mine = row.base or row.new
        others = [o for o in out if o.side == ("new" if row.base else "base")]
        near = [o for o in others if _nearest(o.job) == _nearest(row.job)]
        if near:
            theirs = [r.job for o in near for r in (o.base or o.new)]
            pair = ([r.job for r in mine], theirs) if row.base else (theirs, [r.job for r in mine])
            row.near = identity.differences(*pair)
    return out


def machine_of(record: Record) -> str:
    """The kind of machine a record ran on, where it names its own (records of a local run
    leave it to the run's environment: "")."""
    return node_key(record.machine)


def _nearest(job: Job) -> tuple:
    return (job.dataset, job.variant, job.backend, job.device)


def _ran_on(records: list[Record]) -> str:
    return ",".join(sorted({r.where for r in records if r.device}))


def unlike(row: Row) -> bool:
    """Matched on the full configuration and still not alike: it ran on different devices."""
    return row.side == "both" and bool(row.differences) and row.on is None


def judge(row: Row, tol: Tolerances = Tolerances()) -> Row:
    """Fill `row.changes` with a verdict per metric (rows on both sides only)."""
    row.changes = []
    if row.side != "both" or unlike(row):
        return row
    base_ok = [r for r in row.base if r.status == "ok"]
    new_ok = [r for r in row.new if r.status == "ok"]
    # Timing is judged on the records neither contended nor unstable. With several runs a side
    # the flagged ones are left out and the rest judged where each side keeps two or more (a
    # stalled process among ten says nothing about the other nine; Welch's test then judges
    # the rest); otherwise a flagged record leaves the row without a timing verdict.
    flagged = [r for r in base_ok + new_ok if r.contended or r.unstable]
    base_t, new_t = _trusted(base_ok), _trusted(new_ok)
    untrusted = bool(flagged) and min(len(base_t), len(new_t)) < 2
    why = "contended" if any(r.contended for r in flagged) else "unstable"
    for metric in METRICS:
        change = Change(metric, _per_seed(base_ok, metric), _per_seed(new_ok, metric))
        if not change.base or not change.new:
            change.skipped = "no values"
        elif metric.is_timing and untrusted:
            change.skipped = why
        else:
            if metric.is_timing and flagged:
                change.base, change.new = _per_seed(base_t, metric), _per_seed(new_t, metric)
                change.left_out = len(flagged)
            if change.base and change.new:
                change.verdict, change.p_value = _verdict(change, tol)
            else:
                change.skipped = "no values"
        row.changes.append(change)
    return row


def _trusted(records: list[Record]) -> list[Record]:
    """The records whose timings can be judged: neither contended nor unstable."""
    return [r for r in records if not (r.contended or r.unstable)]


def _per_seed(records: list[Record], metric: Metric) -> list[float]:
    return identity.seed_values(records, lambda r: getattr(r, metric.name))


def _verdict(change: Change, tol: Tolerances) -> tuple[str, float | None]:
    metric, delta = change.metric, change.delta
    assert delta is not None  # called only with values on both sides
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
    base: Iterable[Record],
    new: Iterable[Record],
    tol: Tolerances = Tolerances(),
    on: Sequence[str] | None = None,
) -> list[Row]:
    return [judge(row, tol) for row in match(base, new, on)]


@dataclass(frozen=True)
class Failure:
    row: Row
    reason: str


def gate(
    rows: list[Row],
    tol: Tolerances = Tolerances(),
    max_slowdown: float | None = None,
    allow_missing: bool = False,
    pooled_alpha: float | None = None,
) -> list[Failure]:
    """The CI gate's failing rows.

    A baseline row fails when the new results have no counterpart for it (unless
    `allow_missing`; the reason says how the nearest new configuration differs), when a new
    record failed, diverged, timed out or was skipped where the baseline has a result, when the
    two sides ran on different devices, or when its mean test accuracy fell by more than
    `tol.accuracy` and, where both sides have two or more seeds, Welch's test also calls the
    drop significant: a drop must matter in size and be more than noise. With `max_slowdown`
    (e.g. 0.25), a row also fails when its training or inference throughput fell by more than
    that fraction; contended and unstable records never fail on timing (`judge` leaves them
    out and judges the rest, where each side keeps two or more). Rows only in the new
    results pass.

    With `pooled_alpha` (the gate of suites/gate.toml, docs/ci.md), accuracy is judged once
    for all rows instead of row by row: the gate fails when one one-sided t-test of the mean
    drop over the matched rows (`power.pooled_drop_test`) rejects "no drop" at that alpha;
    the failure is put on the row that dropped most. A row also fails when its accuracy
    spread across seeds is significantly wider than the baseline's (one-sided Brown-Forsythe,
    `power.wider_spreads`, at the same alpha Bonferroni-corrected over the rows judged): a bug
    that mostly scatters the seeds hides from the t-test as noise. And a row fails when its
    seeds rank significantly lower than the baseline's (one-sided exact Mann-Whitney,
    `power.lower_ranks`, the same correction): distribution-free, it sees a drop of most seeds
    that a few scattered ones hide from the t-test. A row with fewer than three seeds on a
    side gets neither verdict (`power.MIN_SPREAD_SEEDS`).
    """
    failures: list[Failure] = []
    pooled: list[Row] = []
    for row in rows:
        if row.side == "base":
            if not allow_missing and any(r.status == "ok" for r in row.base):
                near = f" (the results have it with {', '.join(row.near)})" if row.near else ""
                failures.append(Failure(row, f"missing in the results{near}"))
            continue
        if row.side != "both":
            continue
        if unlike(row):
            failures.append(Failure(row, "unlike: " + ", ".join(row.differences)))
            continue
        if row.failed_new:
            r = row.failed_new[0]
            failures.append(Failure(row, f"{r.status}: {r.error or 'no result'}"))
            continue
        if not any(r.status == "ok" for r in row.base):
            continue  # nothing to hold the new results to (e.g. no GPU on either side)
        acc = row.change(ACCURACY)
        if acc is None or acc.skipped or acc.delta is None:
            failures.append(Failure(row, "no accuracy in the new results"))
            continue
        if pooled_alpha is not None:
            pooled.append(row)
        significant = acc.p_value is None or acc.p_value < 1 - tol.confidence
        if pooled_alpha is None and acc.delta < -tol.accuracy and significant:
            why = f"accuracy {acc.delta:+.4f}"
            if acc.p_value is not None:
                why += f" (Welch p={acc.p_value:.2g})"
            failures.append(Failure(row, why))
            continue
        if max_slowdown is None:
            continue
        for metric in THROUGHPUT:
            c = row.change(metric)
            if c and not c.skipped and c.relative is not None and c.relative < -max_slowdown:
                failures.append(
                    Failure(row, f"{metric.label} {c.relative:+.0%} (limit -{max_slowdown:.0%})")
                )
                break
    if pooled and pooled_alpha is not None:
        failures.extend(_pooled_failure(pooled, pooled_alpha))
    return _one_per_row(failures)


def _one_per_row(failures: list[Failure]) -> list[Failure]:
    """One failure per failing row, its reasons joined in the order found (the pooled rule
    can fail a row for its drop, its spread and its ranks at once)."""
    reasons: dict[int, list[str]] = {}
    rows: dict[int, Row] = {}
    for failure in failures:
        rows.setdefault(id(failure.row), failure.row)
        reasons.setdefault(id(failure.row), []).append(failure.reason)
    return [Failure(rows[key], "; ".join(why)) for key, why in reasons.items()]


def _pooled_failure(rows: list[Row], alpha: float) -> list[Failure]:
    from mnist_bench.analyse.power import lower_ranks, pooled_drop_test, wider_spreads

    changes = [(row, row.change(ACCURACY)) for row in rows]
    judged = [(row, c) for row, c in changes if c is not None]
    values = [(c.base, c.new) for _, c in judged]
    failures: list[Failure] = []
    drop, p = pooled_drop_test(values)
    if p < alpha:
        worst = min(changes, key=lambda pair: pair[1].delta if pair[1] and pair[1].delta else 0.0)
        why = (
            f"pooled accuracy {-drop:+.4f} over {len(rows)} rows (one-sided p={p:.2g} < {alpha:g})"
        )
        failures.append(Failure(worst[0], why))
    for i, test, per_row in wider_spreads(values, alpha):
        why = (
            f"accuracy spread {100 * test.new_sd:.2f} pts against {100 * test.base_sd:.2f} "
            f"(one-sided Brown-Forsythe p={test.p_value:.2g} < {per_row:.2g})"
        )
        failures.append(Failure(judged[i][0], why))
    for i, ranks, per_row in lower_ranks(values, alpha):
        why = (
            f"accuracy ranks lower: U={ranks.u:g} of {ranks.base_seeds * ranks.new_seeds} "
            f"(one-sided Mann-Whitney p={ranks.p_value:.2g} < {per_row:.2g})"
        )
        failures.append(Failure(judged[i][0], why))
    return failures
