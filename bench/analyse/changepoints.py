"""Change points in a series of per-commit values: where a metric stepped, by how much, and how
surely. Pure functions over lists of floats (NumPy only), no framework.

The test for one step is the likelihood-ratio test for a single shift in the mean of normal
values with an unknown common variance: the largest two-sample t statistic (pooled variance)
over every split of the series, `max_c |t_c|`. Its null distribution is not Student's t (it is
the maximum over n - 1 correlated splits); it depends on n alone, so it is simulated once per
series length from independent normal values (`null_max_t`, seeded: the same series always
gets the same p-value). One value after the step can be enough to name it, which is what a CI
check of the newest commit needs. A permutation calibration (shuffles of the series itself)
assumes no distribution but cannot do that: in one order out of n any value is the last, so a
step at the last commit never gets p below 2/n (`calibration="permutation"`).

Several steps are found by binary segmentation: test the whole series, and where a step is
significant, test each side of it again.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: `history --help` needs none of it
    import numpy as np

MIN_POINTS = 3  # a split needs one degree of freedom for its variance
EXACT_UP_TO = 6  # 720 orders: every one is tried
PERMUTATIONS = 1999  # p-values resolve to 1/2000
SIMULATIONS = 9999  # draws of the normal null per series length: p resolves to 1/10,000
DRAWS_BUDGET = 2_000_000  # values simulated per length at most: fewer draws for long series
SEED = 20261124


@dataclass(frozen=True)
class Step:
    """A step in a series.

    Attributes:
        index: the position of the first value at the new level.
        before: mean of the values from the previous step (or the start) up to `index`.
        after: mean of the values from `index` up to the next step (or the end).
        p_value: of the test that found it (permutation, maximal |t| over the splits of the
            segment it was found in).
        t: the two-sample t statistic of that split (positive: the values went up).
    """

    index: int
    before: float
    after: float
    p_value: float
    t: float

    @property
    def size(self) -> float:
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        return self.size / self.before if self.before else None


def split_statistics(values: np.ndarray) -> np.ndarray:
    """The pooled two-sample t statistic of every split of each row of `values`.

    Args:
        values: shape (m, n), n >= 3; column c of the result compares values[:, :c + 1] with
            values[:, c + 1:].

    Returns:
        shape (m, n - 1). A split whose sides are both constant has t = ±inf if their means
        differ (any difference is then certain) and 0 if they do not.
    """
    import numpy as np

    raw = np.asarray(values, dtype=float)
    n = raw.shape[1]
    y = raw - raw.mean(axis=1, keepdims=True)  # sums of squares without cancellation
    left = np.arange(1, n, dtype=float)
    right = n - left
    s1 = np.cumsum(y, axis=1)[:, :-1]
    s2 = np.cumsum(y * y, axis=1)[:, :-1]
    t1 = y.sum(axis=1, keepdims=True)
    t2 = (y * y).sum(axis=1, keepdims=True)
    mean_l, mean_r = s1 / left, (t1 - s1) / right
    ss = (s2 - s1 * s1 / left) + ((t2 - s2) - (t1 - s1) ** 2 / right)
    # Rounding leaves about 1e-16 of the scale where there is no spread at all; below this
    # floor the spread is taken as nil.
    scale = np.abs(raw).max(axis=1, keepdims=True)
    floor = (1e-9 * scale) ** 2
    var = np.maximum(ss / (n - 2), 0.0)
    diff = mean_r - mean_l
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.sqrt(var * (1 / left + 1 / right))
    flat = var <= floor
    t = np.where(flat, np.where(np.abs(diff) > 1e-9 * scale, np.copysign(np.inf, diff), 0.0), t)
    return t


def best_split(
    values: Sequence[float] | np.ndarray, *, calibration: str = "normal"
) -> tuple[int, float, float]:
    """The most likely single step in `values` and its significance.

    Args:
        values: the series, oldest first.
        calibration: how the largest |t| becomes a p-value: "normal" (against `null_max_t`, the
            same statistic over independent normal values) or "permutation" (against shuffles
            of `values` themselves: no distribution assumed, but a step at the last value can
            never reach p < 2/n, because any value is last once in n orders).

    Returns:
        (index of the first value after the step, its t statistic, p-value).

    Raises:
        ValueError: fewer than `MIN_POINTS` values, a value that is not finite, or an unknown
            calibration.
    """
    import numpy as np

    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or len(y) < MIN_POINTS:
        raise ValueError(f"a step test needs at least {MIN_POINTS} values, got {len(y)}")
    if not np.isfinite(y).all():
        raise ValueError("values must be finite")
    t = split_statistics(y[None, :])[0]
    best = int(np.argmax(np.abs(t)))
    observed = abs(t[best]) * (1 - 1e-12)  # a tie counts as reaching it
    n = len(y)
    if calibration == "normal":
        null = null_max_t(n)
        p = (1 + len(null) - np.searchsorted(null, observed)) / (len(null) + 1)
    elif calibration == "permutation":
        if math.factorial(n) <= math.factorial(EXACT_UP_TO):
            orders = np.array(list(itertools.permutations(range(n))))
            p = np.mean(np.abs(split_statistics(y[orders])).max(axis=1) >= observed)
        else:
            rng = np.random.default_rng(SEED)
            shuffled = rng.permuted(np.broadcast_to(y, (PERMUTATIONS, n)), axis=1)
            null = np.abs(split_statistics(shuffled)).max(axis=1)
            p = (1 + np.sum(null >= observed)) / (PERMUTATIONS + 1)
    else:
        raise ValueError(f"unknown calibration {calibration!r}; valid: normal, permutation")
    return best + 1, float(t[best]), float(p)


@functools.cache
def null_max_t(n: int) -> np.ndarray:
    """The largest |t| over the splits of n independent standard normal values, `SIMULATIONS`
    times, sorted. The statistic does not change when the values are shifted or scaled, so
    this one distribution serves every series of length n (simulated once, with a fixed seed:
    the same series always gets the same p-value). Past 200 values, fewer draws (at least
    999) keep the cost bounded."""
    import numpy as np

    rng = np.random.default_rng(SEED + n)
    draws = rng.standard_normal((max(999, min(SIMULATIONS, DRAWS_BUDGET // n)), n))
    return np.sort(np.abs(split_statistics(draws)).max(axis=1))


def detect(
    values: Sequence[float],
    *,
    alpha: float = 0.05,
    log: bool = False,
    calibration: str = "normal",
) -> list[Step]:
    """Every significant step in `values`, in order (binary segmentation).

    Args:
        values: one value per commit, oldest first.
        alpha: a step is kept when its permutation p-value is below this.
        log: test the logarithms (a step is a ratio: timings); `before` and `after` stay
            means of the values themselves.
        calibration: see `best_split`.

    Raises:
        ValueError: `alpha` outside (0, 1), a value that is not finite, or not positive with
            `log`.
    """
    import numpy as np

    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} is not between 0 and 1")
    raw = np.asarray(values, dtype=float)
    if not np.isfinite(raw).all():
        raise ValueError("values must be finite")
    if log and (raw <= 0).any():
        raise ValueError("log scale needs positive values")
    y = np.log(raw) if log else raw
    found: dict[int, tuple[float, float]] = {}

    def search(lo: int, hi: int) -> None:
        if hi - lo < MIN_POINTS:
            return
        index, t, p = best_split(y[lo:hi], calibration=calibration)
        if p < alpha:
            found[lo + index] = (p, t)
            search(lo, lo + index)
            search(lo + index, hi)

    search(0, len(y))
    bounds = [0, *sorted(found), len(y)]
    return [
        Step(
            index=k,
            before=float(raw[bounds[i - 1] : k].mean()),
            after=float(raw[k : bounds[i + 1]].mean()),
            p_value=found[k][0],
            t=found[k][1],
        )
        for i, k in enumerate(bounds[1:-1], 1)
    ]
