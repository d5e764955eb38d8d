"""Statistics over lists of floats: pure functions, tested against hand-computed numbers.

SciPy is imported only when a t quantile outside `T95`, or a t-test, is actually needed.
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


# The two-sided 95% Student-t quantile of 1 to 100 degrees of freedom, each the float that
# `scipy.special.stdtrit(dof, 0.975)` gives (tests/test_stats_table.py checks every one): a
# report's intervals without SciPy's import (a third of a second, numpy with it).
T95 = (
    12.706204736174694,
    4.302652729749462,
    3.1824463052837078,
    2.7764451051977934,
    2.5705818356363146,
    2.4469118511449786,
    2.364624251592784,
    2.306004135204166,
    2.262157162798205,
    2.228138851986274,
    2.200985160091639,
    2.1788128296672284,
    2.1603686564627913,
    2.144786687917804,
    2.131449545559776,
    2.1199052992212546,
    2.1098155778333156,
    2.1009220402410382,
    2.0930240544083087,
    2.085963447265864,
    2.0796138447276795,
    2.0738730679040254,
    2.0686576104190486,
    2.0638985616280245,
    2.0595385527532972,
    2.0555294386428735,
    2.0518305164802846,
    2.0484071417952454,
    2.045229642132703,
    2.0422724563012378,
    2.039513446396408,
    2.0369333434601016,
    2.0345152974493383,
    2.0322445093177186,
    2.030107928250343,
    2.0280940009804502,
    2.0261924630291093,
    2.0243941639119694,
    2.022690920036761,
    2.021075390306273,
    2.019540970441376,
    2.0180817028184443,
    2.016692199227824,
    2.0153675744437636,
    2.014103388880846,
    2.012895598919429,
    2.0117405137297655,
    2.010634757624232,
    2.0095752371292392,
    2.008559112100761,
    2.007583770315836,
    2.006646805061688,
    2.0057459953178687,
    2.0048792881880564,
    2.0040447832891455,
    2.003240718847872,
    2.002465459291007,
    2.0017174841452356,
    2.000995378088267,
    2.0002978220142604,
    1.999623584994939,
    1.9989715170333788,
    1.998340542520741,
    1.997729654317693,
    1.9971379083920038,
    1.9965644189523117,
    1.996008354025296,
    1.9954689314298435,
    1.9949454151072374,
    1.994437111771186,
    1.9939433678456255,
    1.9934635666618719,
    1.992997125889855,
    1.992543495180932,
    1.9921021540022417,
    1.9916726096446642,
    1.9912543953883846,
    1.9908470688116906,
    1.9904502102301285,
    1.990063421254446,
    1.9896863234569029,
    1.989318557136572,
    1.9889597801751624,
    1.9886096669757083,
    1.9882679074772216,
    1.98793420623902,
    1.9876082815890708,
    1.9872898648311692,
    1.986978699506281,
    1.9866745407037683,
    1.9863771544186177,
    1.98608631695113,
    1.9858018143458227,
    1.985523441866604,
    1.9852510035054978,
    1.984984311522457,
    1.9847231860139845,
    1.9844674545084815,
    1.9842169515864174,
    1.9839715185235518,
)


def t_quantile(confidence: float, dof: int) -> float:
    if confidence == 0.95 and 1 <= dof <= len(T95):
        return T95[dof - 1]
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
