"""Statistics against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
from mnist_bench.core import stats


def test_single_value_has_no_interval():
    s = stats.summarize([0.97])
    assert (s.n, s.mean, s.std, s.min, s.max) == (1, 0.97, 0.0, 0.97, 0.97)
    assert s.ci_low is None and s.half_width is None


def test_three_values_by_hand():
    # values 1, 2, 3: mean 2, sample variance ((1)^2 + 0 + 1^2) / 2 = 1, std 1,
    # t(0.975, 2) = 4.302652729911275, half-width = 4.3027 * 1 / sqrt(3) = 2.484138...
    s = stats.summarize([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.std == 1.0 and (s.min, s.max) == (1.0, 3.0)
    assert s.half_width == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert s.ci_low == pytest.approx(2.0 - 2.4841377118, rel=1e-9)


def test_accuracies_by_hand():
    # 0.97, 0.98: mean 0.975, std sqrt(2 * 0.005^2 / 1) = 0.0070711, t(0.975, 1) = 12.7062047
    s = stats.summarize([0.97, 0.98])
    assert s.std == pytest.approx(0.00707106781, rel=1e-8)
    assert s.half_width == pytest.approx(12.7062047362 * 0.00707106781 / math.sqrt(2), rel=1e-8)


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        stats.summarize([])


def test_welch_by_hand():
    # a = 1,2,3 (mean 2, var 1), b = 4,5,6 (mean 5, var 1): t = -3 / sqrt(1/3 + 1/3) = -3.6742,
    # Welch dof = (2/3)^2 / ((1/3)^2/2 * 2) = 4; two-sided p = 0.021311641128756...
    assert stats.welch_p_value([1, 2, 3], [4, 5, 6]) == pytest.approx(0.0213116411, rel=1e-6)


def test_welch_degenerate_cases():
    assert stats.welch_p_value([1.0], [2.0, 3.0]) is None
    assert stats.welch_p_value([0.5, 0.5], [0.5, 0.5]) == 1.0
    assert stats.welch_p_value([0.5, 0.5], [0.6, 0.6]) == 0.0


def test_welch_agrees_with_scipy_stats():
    from scipy.stats import ttest_ind

    samples = [
        ([0.97, 0.972, 0.968], [0.96, 0.955]),
        ([1, 2, 3, 4], [2, 9, 4]),
        ([0.9211, 0.9203, 0.9220], [0.9215, 0.9200, 0.9230, 0.9190]),
    ]
    for a, b in samples:
        expected = ttest_ind(a, b, equal_var=False).pvalue
        assert stats.welch_p_value(a, b) == pytest.approx(expected, rel=1e-9)
