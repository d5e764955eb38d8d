"""The t quantiles `stats` keeps (`T95`) are the ones SciPy computes, to the last bit."""

import pytest
from mnist_bench.core import stats

special = pytest.importorskip("scipy.special")


def test_every_kept_quantile_is_scipys():
    assert len(stats.T95) == 100
    for dof, kept in enumerate(stats.T95, 1):
        assert kept == float(special.stdtrit(dof, 0.5 + 0.95 / 2)), dof


@pytest.mark.parametrize("confidence, dof", [(0.95, 101), (0.95, 250), (0.9, 3), (0.99, 1)])
def test_quantiles_outside_the_table_come_from_scipy(confidence, dof):
    assert stats.t_quantile(confidence, dof) == float(special.stdtrit(dof, 0.5 + confidence / 2))


def test_a_summary_uses_the_kept_quantile():
    got = stats.summarize([1.0, 2.0, 4.0])
    half = float(special.stdtrit(2, 0.975)) * stats.math.sqrt(7 / 3) / stats.math.sqrt(3)
    assert got.ci_high == pytest.approx(7 / 3 + half, rel=1e-15)
    assert got.ci_low == pytest.approx(7 / 3 - half, rel=1e-15)
