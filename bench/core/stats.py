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
