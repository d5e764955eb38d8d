"""Statistics over lists of floats: pure functions, tested against hand-computed numbers.

SciPy is imported only when a t quantile or a t-test is actually needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Mean, spread and 95% Student-t confidence interval of a sample."""

    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for n == 1
    min: float
    max: float
    ci_low: float | None  # None for n == 1: no interval from one value
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None else self.ci_high - self.mean

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def t_quantile(confidence: float, dof: int) -> float:
    from scipy import special  # a fraction of scipy.stats' import time; the same quantile

    return float(special.stdtrit(dof, 0.5 + confidence / 2))


def summarize(values: list[float], confidence: float = 0.95) -> Summary:
    """Summary of `values` (at least one)."""
    if not values:
        raise ValueError("summarize() needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, 0.0, values[0], values[0], None, None)
    std = math.sqrt(_variance(values))
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, min(values), max(values), mean - half, mean + half)


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None when either side has fewer than 2 values.

    Two samples with no spread at all are equal (p = 1) or certainly different (p = 0).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):
        return 1.0 if a[0] == b[0] else 0.0
    from scipy import special  # not scipy.stats: its import alone would cost `compare` ~1 s

    va, vb = _variance(a) / len(a), _variance(b) / len(b)
    t = (math.fsum(a) / len(a) - math.fsum(b) / len(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return float(2 * special.stdtr(dof, -abs(t)))


def _variance(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


# ------------------------------------------------------------------ steady-state windows
# Over the timing windows of one record (seconds per 1,000 samples, in the order trained).


def median(values: list[float]) -> float:
    """The median of `values` (at least one)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        raise ValueError("median() needs at least one value")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def mad_ratio(values: list[float]) -> float | None:
    """Median absolute deviation over the median: a robust relative spread; None with fewer
    than two values or a median that is not positive."""
    if len(values) < 2:
        return None
    centre = median(values)
    if centre <= 0:
        return None
    return median([abs(v - centre) for v in values]) / centre


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free interval for the median: order statistics x(l) and x(n + 1 - l),
    l the largest rank with P(B <= l - 1) <= (1 - confidence) / 2, B ~ Binomial(n, 1/2). It
    assumes independent values; None when there are too few for `confidence` (6 for 95%)."""
    n = len(values)
    tail = (1 - confidence) / 2
    rank, cumulative = 0, 0.0
    while rank < n:
        cumulative += math.comb(n, rank) / 2**n  # P(B <= rank)
        if cumulative > tail:
            break
        rank += 1
    if rank == 0:
        return None
    ordered = sorted(values)
    return ordered[rank - 1], ordered[n - rank]


def mser(values: list[float], batch: int = 5) -> int:
    """Where the steady state starts, by the Marginal Standard Error Rule (White 1997) over
    means of `batch` consecutive values (MSER-5 by default): the truncation d (in batches) that
    minimizes sum((Z_j - mean of Z_d..)^2) / (k - d)^2 over the k batch means Z, d at most k / 2
    (a minimum in the second half says the series is too short to tell; it is not taken).
    Returns how many leading values are warm-up (a multiple of `batch`); ties take the earliest.
    """
    if batch < 1:
        raise ValueError("mser() needs a batch of 1 or more")
    k = len(values) // batch
    if k < 2:
        return 0
    means = [math.fsum(values[j * batch : (j + 1) * batch]) / batch for j in range(k)]
    best, best_d = math.inf, 0
    for d in range(k // 2 + 1):
        rest = means[d:]
        centre = math.fsum(rest) / len(rest)
        score = math.fsum((z - centre) ** 2 for z in rest) / len(rest) ** 2
        if score < best * (1 - 1e-12):
            best, best_d = score, d
    return best_d * batch
