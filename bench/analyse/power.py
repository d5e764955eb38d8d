"""Power of the accuracy gate: the smallest drop it catches, and the cheapest suite that catches
a given one. Pure functions over seed spreads (floats); SciPy for the t and chi distributions.

The model (the assumptions `mnist-bench power` states):

- a row's test accuracy over seeds is normal with the standard deviation `sigma` measured in
  the run files (the sample standard deviation over seeds), the same on both sides;
- a bug moves every seed of a row by the same `drop` (a shift, not a change of spread);
- the baseline has `base_seeds` seeds and the gate run `seeds`; Welch's test is taken as
  Student's pooled t-test (equal spreads and equal sizes make them the same);
- rows are independent of one another.

A row fails when the observed drop exceeds `tolerance` AND the t-test rejects "no drop" at
`alpha` (one-sided, or two-sided: half of `alpha` on the side of a drop), which is `check`'s
rule. Its power is exact under the model: with D the observed drop (normal, standard error
se) and S the estimated standard error (se times sqrt(chi2_df / df), independent of D),
P(D > tolerance and D > t_crit S) is one integral over the chi distribution.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

SIDES = (1, 2)
CORRECTIONS = ("none", "bonferroni")


@dataclass(frozen=True)
class Rule:
    """A gate's verdict rule: per row (or pooled over rows), at `alpha`, one- or two-sided,
    with an absolute `tolerance` the observed drop must also exceed."""

    alpha: float = 0.05
    sides: int = 2
    tolerance: float = 0.005
    correction: str = "none"  # over rows: none, or bonferroni (alpha / rows)
    pooled: bool = False  # one test of the mean drop over all rows instead of one per row

    def row_alpha(self, rows: int) -> float:
        return (
            self.alpha / rows if self.correction == "bonferroni" and not self.pooled else self.alpha
        )


def critical_t(alpha: float, sides: int, dof: float) -> float:
    """The t value an observed drop's t statistic must exceed."""
    from scipy import special

    return float(special.stdtrit(dof, 1 - alpha / sides))


@functools.lru_cache(maxsize=65536)  # the suite search asks for the same rows many times
def row_power(
    drop: float,
    sigma: float,
    seeds: int,
    base_seeds: int,
    alpha: float,
    sides: int = 1,
    tolerance: float = 0.0,
) -> float:
    """P(a row fails) when its accuracy truly drops by `drop` (0: the false-alarm rate)."""
    dof = seeds + base_seeds - 2
    se = sigma * math.sqrt(1 / seeds + 1 / base_seeds)
    return _power(drop, se, dof, critical_t(alpha, sides, dof), tolerance)


def pooled_power(
    drop: float,
    sigmas: Sequence[float],
    seeds: int,
    base_seeds: int,
    alpha: float,
    sides: int = 1,
    tolerance: float = 0.0,
) -> float:
    """P(the pooled test fails) when every row drops by `drop`: the mean of the rows' drops,
    its standard error from every row's spread, one t-test with all rows' degrees of freedom."""
    k = len(sigmas)
    dof = k * (seeds + base_seeds - 2)
    se = math.sqrt(sum(s * s for s in sigmas)) * math.sqrt(1 / seeds + 1 / base_seeds) / k
    return _power(drop, se, dof, critical_t(alpha, sides, dof), tolerance)


def _power(drop: float, se: float, dof: float, t_crit: float, tolerance: float) -> float:
    from scipy import integrate, special, stats

    if se <= 0:
        return 1.0 if drop > tolerance else 0.0
    if tolerance <= 0:  # the plain t-test: the noncentral t, in closed form
        value = float(1 - special.nctdtr(dof, drop / se, t_crit))
        if not math.isfinite(value):  # far in a tail, where the series gives up
            return 1.0 if drop / se > t_crit else 0.0
        return value

    def given(s: float) -> float:  # P(D > max(tolerance, t_crit * se * s)) at S = se * s
        return float(special.ndtr((drop - max(tolerance, t_crit * se * s)) / se))

    chi = stats.chi(dof, scale=1 / math.sqrt(dof))  # S / se
    low, high = chi.ppf(1e-12), chi.ppf(1 - 1e-12)
    knot = tolerance / (t_crit * se) if t_crit > 0 else None  # where the max switches
    points = [knot] if knot is not None and low < knot < high else None
    value, _ = integrate.quad(lambda s: chi.pdf(s) * given(s), low, high, points=points, limit=200)
    return min(1.0, max(0.0, value))


def gate_power(
    drop: float, sigmas: Sequence[float], seeds: int, base_seeds: int, rule: Rule
) -> float:
    """P(the gate fails) when every row drops by `drop`: any row failing fails the gate."""
    if rule.pooled:
        return pooled_power(drop, sigmas, seeds, base_seeds, rule.alpha, rule.sides, rule.tolerance)
    alpha = rule.row_alpha(len(sigmas))
    passed = 1.0
    for sigma in sigmas:
        passed *= 1 - row_power(drop, sigma, seeds, base_seeds, alpha, rule.sides, rule.tolerance)
    return 1 - passed


def one_row_power(
    drop: float, sigma: float, rows: int, seeds: int, base_seeds: int, rule: Rule
) -> float:
    """P(the gate fails) when only one row (of `rows`, spread `sigma`) drops by `drop`: that
    row's test at the corrected alpha (the other rows' false alarms left out); pooled, the
    drop is diluted to drop / rows."""
    if rule.pooled:
        return pooled_power(
            drop / rows, [sigma] * rows, seeds, base_seeds, rule.alpha, rule.sides, rule.tolerance
        )
    alpha = rule.row_alpha(rows)
    return row_power(drop, sigma, seeds, base_seeds, alpha, rule.sides, rule.tolerance)


def min_detectable(power_of, target: float, high: float = 1.0) -> float:
    """The smallest drop in [0, high] whose `power_of(drop)` reaches `target` (bisection on a
    power that grows with the drop); inf when even `high` does not."""
    if power_of(high) < target:
        return math.inf
    if power_of(0.0) >= target:
        return 0.0
    from scipy import optimize

    return float(optimize.brentq(lambda d: power_of(d) - target, 0.0, high, xtol=1e-6))


def normal_min_detectable(
    sigma: float, seeds: int, base_seeds: int, alpha: float, power: float, sides: int = 1
) -> float:
    """The closed-form normal approximation (z_alpha + z_power) * se, for reference: it is
    below the t-test's, which pays for estimating sigma."""
    from scipy import special

    se = sigma * math.sqrt(1 / seeds + 1 / base_seeds)
    return float((special.ndtri(1 - alpha / sides) + special.ndtri(power)) * se)


@dataclass(frozen=True)
class Candidate:
    """A gate suite: which rows (indices into the measured rows), seeds per row, its
    estimated seconds and its power against the target drop, and its false-alarm rate."""

    rows: tuple[int, ...]
    seeds: int
    seconds: float
    power: float
    false_alarm: float


def cheapest(
    sigmas: Sequence[float],
    seconds_per_seed: Sequence[float],
    drop: float,
    power: float,
    rule: Rule,
    budget: float,
    max_seeds: int = 30,
    base_seeds: int | None = None,
) -> list[Candidate]:
    """The suites (a subset of rows, one seed count) that reach `power` against a `drop` of
    every row within `budget` seconds, cheapest first (at most 10). `base_seeds` None: the
    baseline has as many seeds as the gate run. Rows are tried in every subset when there are
    at most 12 of them, else the cheapest-per-information first."""
    import itertools

    n = len(sigmas)
    order = sorted(range(n), key=lambda i: seconds_per_seed[i] * sigmas[i] ** 2)
    subsets: list[tuple[int, ...]]
    if n <= 12:
        subsets = [c for k in range(1, n + 1) for c in itertools.combinations(range(n), k)]
    else:
        subsets = [tuple(sorted(order[:k])) for k in range(1, n + 1)]
    found: list[Candidate] = []
    for rows in subsets:
        per_seed = sum(seconds_per_seed[i] for i in rows)
        chosen = [sigmas[i] for i in rows]
        for seeds in range(2, max_seeds + 1):
            seconds = per_seed * seeds
            if seconds > budget:
                break
            base = seeds if base_seeds is None else base_seeds
            p = gate_power(drop, chosen, seeds, base, rule)
            if p >= power:
                alarm = gate_power(0.0, chosen, seeds, base, rule)
                found.append(Candidate(rows, seeds, seconds, p, alarm))
                break
    found.sort(key=lambda c: (c.seconds, -c.power))
    return found[:10]


# ------------------------------------------------------------------- from run files to a report
ASSUMPTIONS = (
    "a row's accuracy over seeds is normal, with the spread (sample std over seeds) measured "
    "in the run files, the same before and after a change",
    "a bug shifts every seed of a row by the same drop; 'every row' assumes it drops each row "
    "by that much (real bugs do not: label noise costs single-dense 3x what it costs two-dense)",
    "Welch's test is taken as Student's (equal spreads, equal sizes); rows are independent",
    "the baseline has as many seeds as the gate run unless --base-seeds says otherwise",
    "seconds come from the time estimates (plan/estimate.py: earlier run files, else FLOPs), "
    "per seed of each row; the baseline's own run is not counted (it is stored)",
    "a spread from 3 seeds is itself uncertain (its 95% interval spans about 0.5x to 6x)",
    "check --pooled-alpha also fails a row whose spread widens significantly (a one-sided "
    "Brown-Forsythe test) or whose seeds rank significantly lower (a one-sided exact "
    "Mann-Whitney test), each Bonferroni over rows at the same alpha: signals whose power and "
    "false alarms this does not model (docs/ci.md measures them)",
)


@dataclass(frozen=True)
class RowSpread:
    """One configuration of the run files: its label, seeds, accuracy spread and the
    estimated seconds of one more seed of it."""

    label: str  # variant/backend, with epochs and training size
    variant: str
    backend: str
    epochs: int
    train_samples: int
    seeds: int
    mean: float
    sigma: float
    seconds: float


@dataclass
class PowerReport:
    """What `mnist-bench power` shows: the rule, per row and whole-gate minimum detectable
    drops, the false-alarm rate, and the cheapest suites reaching the target."""

    rule: Rule
    power: float
    drop: float
    budget: float
    seeds: int  # the gate's seeds per row (as measured: the most any row has)
    base_seeds: int
    rows: list[RowSpread]
    row_mdd: list[float]  # per row, at the gate's corrected alpha
    gate_mdd_every_row: float
    gate_mdd_one_row: float  # the worst row alone dropping
    false_alarm: float
    target_power_now: float
    candidates: list[Candidate]
    assumptions: tuple[str, ...] = ASSUMPTIONS

    def to_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        data["candidates"] = [
            {**asdict(c), "rows": [self.rows[i].label for i in c.rows]} for c in self.candidates
        ]
        return data


def spreads(records, learnt: dict, min_seeds: int = 2) -> list[RowSpread]:
    """One `RowSpread` per configuration with ok records of `min_seeds` seeds or more (repeats
    of a seed averaged)."""
    import statistics

    from mnist_bench.core import identity
    from mnist_bench.plan import estimate

    groups = identity.group(
        [
            r
            for r in records
            if r.status == "ok"
            and r.test_accuracy is not None
            and not r.repeat
            and r.injected is None  # a bug trained on purpose is no sample of real spread
        ],
        lambda job: identity.key_except(job, "seed", "repeat"),
    )
    out = []
    for members in groups.values():
        values = identity.seed_values(members, lambda r: r.test_accuracy)
        if len(values) < min_seeds:
            continue
        first = members[0]
        samples = first.train_samples or 0
        flops = {first.variant: first.flops_per_train_sample or estimate.REFERENCE_FLOPS}
        seconds, _ = estimate.job_seconds(first.job, samples, learnt, flops)
        if not math.isfinite(seconds):
            seconds = statistics.median(r.wall_seconds or 0.0 for r in members)
        label = f"{first.variant}/{first.backend} {first.settings.epochs}ep {samples // 1000}k"
        out.append(
            RowSpread(
                label,
                first.variant,
                first.backend,
                first.settings.epochs,
                samples,
                len(values),
                statistics.fmean(values),
                statistics.stdev(values),
                seconds,
            )
        )
    out.sort(key=lambda r: r.label)
    return out


def analyse(
    rows: list[RowSpread],
    rule: Rule,
    *,
    power: float,
    drop: float,
    budget: float,
    max_seeds: int = 30,
    base_seeds: int | None = None,
) -> PowerReport:
    """The report for measured `rows` under `rule` (see `PowerReport`)."""
    seeds = max(r.seeds for r in rows)
    base = seeds if base_seeds is None else base_seeds
    sigmas = [r.sigma for r in rows]
    k = len(rows)
    row_mdd = [
        min_detectable(lambda d, s=s: one_row_power(d, s, k, seeds, base, rule), power)
        for s in sigmas
    ]
    every = min_detectable(lambda d: gate_power(d, sigmas, seeds, base, rule), power)
    worst = max(sigmas)
    one = min_detectable(lambda d: one_row_power(d, worst, k, seeds, base, rule), power)
    candidates = cheapest(
        sigmas,
        [r.seconds for r in rows],
        drop,
        power,
        rule,
        budget,
        max_seeds=max_seeds,
        base_seeds=base_seeds,
    )
    return PowerReport(
        rule=rule,
        power=power,
        drop=drop,
        budget=budget,
        seeds=seeds,
        base_seeds=base,
        rows=rows,
        row_mdd=row_mdd,
        gate_mdd_every_row=every,
        gate_mdd_one_row=one,
        false_alarm=gate_power(0.0, sigmas, seeds, base, rule),
        target_power_now=gate_power(drop, sigmas, seeds, base, rule),
        candidates=candidates,
    )


# ------------------------------------------------------------------ the pooled rule, on values
def pooled_drop_test(
    rows: Sequence[tuple[Sequence[float], Sequence[float]]], tolerance: float = 0.0
) -> tuple[float, float]:
    """The pooled one-sided test of a drop over rows, each (baseline values, new values), one
    per seed: the mean of the rows' drops (baseline mean minus new mean) and its p-value, the
    standard error from the rows' pooled variances, degrees of freedom summed over rows. The
    drop is tested against `tolerance` (H0: drop <= tolerance). Rows with fewer than two
    values on a side are left out; no row left: (nan, 1.0)."""
    from scipy import special

    drops, variances, dof = [], [], 0
    for base, new in rows:
        nb, nn = len(base), len(new)
        if nb < 2 or nn < 2:
            continue
        mb, mn = math.fsum(base) / nb, math.fsum(new) / nn
        ss = math.fsum((v - mb) ** 2 for v in base) + math.fsum((v - mn) ** 2 for v in new)
        pooled = ss / (nb + nn - 2)
        drops.append(mb - mn)
        variances.append(pooled * (1 / nb + 1 / nn))
        dof += nb + nn - 2
    if not drops:
        return math.nan, 1.0
    k = len(drops)
    drop = math.fsum(drops) / k
    se = math.sqrt(math.fsum(variances)) / k
    if se == 0:
        return drop, 0.0 if drop > tolerance else 1.0
    return drop, float(special.stdtr(dof, -(drop - tolerance) / se))


MIN_SPREAD_SEEDS = 3  # per side: below this a spread test has nothing to stand on


@dataclass(frozen=True)
class RankTest:
    """A one-sided rank test that the new values sit lower than the baseline's."""

    u: float  # Mann-Whitney U of the new values (0: every new value below every baseline one)
    base_seeds: int
    new_seeds: int
    p_value: float  # H0: the new values come from the baseline's distribution


def rank_drop_test(base: Sequence[float], new: Sequence[float]) -> RankTest | None:
    """One-sided Mann-Whitney U test of lower values in `new` than in `base` (one value per
    seed), exact: a distribution-free drop test that holds its false-alarm rate under any
    shape of spread (two-dense's heavy low tail included) and sees a bug that drops most seeds
    while scattering a few (`lr_scale=10`: a t-test reads the scatter as noise). Ties take
    midranks against the no-tie null distribution (SciPy's `method="exact"`, a slightly
    conservative p). None when a side has fewer than `MIN_SPREAD_SEEDS` values."""
    from scipy import stats

    if len(base) < MIN_SPREAD_SEEDS or len(new) < MIN_SPREAD_SEEDS:
        return None
    result = stats.mannwhitneyu(new, base, alternative="less", method="exact")
    return RankTest(float(result.statistic), len(base), len(new), float(result.pvalue))


def lower_ranks(
    rows: Sequence[tuple[Sequence[float], Sequence[float]]], alpha: float
) -> list[tuple[int, RankTest, float]]:
    """The rows (each (baseline values, new values), one per seed) whose new values rank
    significantly lower (`rank_drop_test` at `alpha` Bonferroni-corrected over the rows that
    have a verdict): (index, the test, the per-row alpha) for each."""
    return _significant_rows(rows, alpha, rank_drop_test)


def _significant_rows(rows, alpha: float, test) -> list:
    """(index, test, per-row alpha) of the rows where `test(base, new)` rejects at `alpha`
    Bonferroni-corrected over the rows that have a verdict (`test` gives None for none)."""
    tests = [(i, test(base, new)) for i, (base, new) in enumerate(rows)]
    judged = [(i, t) for i, t in tests if t is not None]
    if not judged:
        return []
    per_row = alpha / len(judged)
    return [(i, t, per_row) for i, t in judged if t.p_value < per_row]


@dataclass(frozen=True)
class SpreadTest:
    """A one-sided test that the new values spread more widely than the baseline's."""

    base_sd: float  # sample standard deviations, one value per seed
    new_sd: float
    p_value: float  # H0: the new spread is no larger than the baseline's


def _sd(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def spread_increase_test(base: Sequence[float], new: Sequence[float]) -> SpreadTest | None:
    """One-sided Brown-Forsythe test of a wider spread in `new` than in `base` (one value
    per seed): a one-sided two-sample t-test (pooled variance, as Levene's test with
    `center="median"`) on each value's absolute deviation from its own side's median, which
    keeps its false-alarm rate under heavy tails where an F-test on the variances does not.
    (Welch's unpooled form cannot reach small p-values with six seeds: the new side's own
    scatter of deviations sets its standard error.) None when a side has fewer than
    `MIN_SPREAD_SEEDS` values. Identical values: p=1 when neither side spreads, p=0 when only
    `new` spreads and its deviations are all equal."""
    from scipy import special

    if len(base) < MIN_SPREAD_SEEDS or len(new) < MIN_SPREAD_SEEDS:
        return None
    zb = [abs(v - _median(base)) for v in base]
    zn = [abs(v - _median(new)) for v in new]
    nb, nn = len(zb), len(zn)
    mb, mn = math.fsum(zb) / nb, math.fsum(zn) / nn
    ss = math.fsum((z - mb) ** 2 for z in zb) + math.fsum((z - mn) ** 2 for z in zn)
    dof = nb + nn - 2
    se = math.sqrt(ss / dof * (1 / nb + 1 / nn))
    if se == 0:
        return SpreadTest(_sd(base), _sd(new), 0.0 if mn > mb else 1.0)
    return SpreadTest(_sd(base), _sd(new), float(special.stdtr(dof, -(mn - mb) / se)))


def variance_ratio_test(base: Sequence[float], new: Sequence[float]) -> SpreadTest | None:
    """One-sided F-test of a larger variance in `new` than in `base` (exact only for normal
    values; kept to compare with `spread_increase_test`). None, and zero spreads, as there."""
    from scipy import special

    if len(base) < MIN_SPREAD_SEEDS or len(new) < MIN_SPREAD_SEEDS:
        return None
    sb, sn = _sd(base), _sd(new)
    if sb == 0:
        return SpreadTest(sb, sn, 0.0 if sn > 0 else 1.0)
    p = special.fdtrc(len(new) - 1, len(base) - 1, (sn / sb) ** 2)
    return SpreadTest(sb, sn, float(p))


def _median(values: Sequence[float]) -> float:
    ordered, n = sorted(values), len(values)
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


def wider_spreads(
    rows: Sequence[tuple[Sequence[float], Sequence[float]]],
    alpha: float,
    test=spread_increase_test,
) -> list[tuple[int, SpreadTest, float]]:
    """The rows (each (baseline values, new values), one per seed) whose new spread is
    significantly wider, by `test` at `alpha` Bonferroni-corrected over the rows that have a
    verdict (a row with fewer than `MIN_SPREAD_SEEDS` values on a side has none): (index, the
    test, the per-row alpha) for each."""
    return _significant_rows(rows, alpha, test)
