"""The spread signal of `check --pooled-alpha`: a row fails when its accuracy spreads across
seeds significantly wider than the baseline's (`power.spread_increase_test`, one-sided
Brown-Forsythe), so a bug that mostly scatters the seeds is not read as noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import benchmark, make_record
from mnist_bench.analyse.compare import compare, gate
from mnist_bench.analyse.power import (
    spread_increase_test,
    variance_ratio_test,
    wider_spreads,
)
from scipy import stats

BASE = [0.951, 0.9525, 0.953, 0.9541, 0.955, 0.9502, 0.9533]
WIDE = [0.94, 0.962, 0.951, 0.935, 0.958, 0.947]


def test_brown_forsythe_is_one_sided_levene_with_the_median():
    result = spread_increase_test(BASE, WIDE)
    want = stats.levene(BASE, WIDE, center="median").pvalue / 2  # two-sided, WIDE is wider
    assert result is not None and result.p_value == pytest.approx(want, rel=1e-9)
    zb = np.abs(np.array(BASE) - np.median(BASE))
    zn = np.abs(np.array(WIDE) - np.median(WIDE))
    t_test = stats.ttest_ind(zn, zb, alternative="greater").pvalue
    assert result.p_value == pytest.approx(t_test, rel=1e-9)
    assert result.base_sd == pytest.approx(np.std(BASE, ddof=1))
    assert result.new_sd == pytest.approx(np.std(WIDE, ddof=1))
    # one-sided: a narrower new spread is no evidence at all
    backwards = spread_increase_test(WIDE, BASE)
    assert backwards is not None and backwards.p_value == pytest.approx(1 - want, rel=1e-9)


def test_f_test_matches_scipy():
    result = variance_ratio_test(BASE, WIDE)
    ratio = np.var(WIDE, ddof=1) / np.var(BASE, ddof=1)
    want = stats.f.sf(ratio, len(WIDE) - 1, len(BASE) - 1)
    assert result is not None and result.p_value == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("test", [spread_increase_test, variance_ratio_test])
def test_fewer_than_three_seeds_a_side_gives_no_verdict(test):
    assert test(BASE, WIDE[:2]) is None
    assert test(BASE[:2], WIDE) is None
    assert test(BASE[:3], WIDE[:3]) is not None


@pytest.mark.parametrize("test", [spread_increase_test, variance_ratio_test])
def test_identical_values_give_a_verdict_without_nan(test):
    flat = [0.95] * 5
    same = test(flat, flat)
    assert same is not None and same.p_value == 1.0 and same.base_sd == 0.0
    wider = test(flat, WIDE)
    assert wider is not None and not math.isnan(wider.p_value) and wider.p_value < 0.01
    narrower = test(WIDE, flat)
    assert narrower is not None and narrower.p_value > 0.5


def test_wider_spreads_corrects_for_the_number_of_rows():
    p = spread_increase_test(BASE, WIDE).p_value  # type: ignore[union-attr]
    alpha = 1.5 * p  # p < alpha, but p > alpha / 2
    assert [i for i, _, _ in wider_spreads([(BASE, WIDE)], alpha)] == [0]
    assert wider_spreads([(BASE, WIDE), (BASE, BASE)], alpha) == []
    # a row without a verdict does not count against the others
    assert [i for i, _, _ in wider_spreads([(BASE, WIDE), (BASE, BASE[:2])], alpha)] == [0]


def records(rows: dict[str, tuple[float, float]], seeds: range, rng) -> list:
    return [
        make_record(variant, seed=seed, test_accuracy=float(mean + rng.normal(0, sd)))
        for variant, (mean, sd) in rows.items()
        for seed in seeds
    ]


CLEAN = {"single-dense": (0.92, 0.0011), "two-dense": (0.955, 0.0033)}


def test_a_bug_that_scatters_the_seeds_fails_on_its_row():
    rng = np.random.default_rng(8)
    base = records(CLEAN, range(100, 116), rng)
    new = records({"single-dense": (0.92, 0.0089), "two-dense": (0.955, 0.0033)}, range(6), rng)
    failures = gate(compare(base, new), pooled_alpha=0.001)  # lr_scale=10's spread, measured
    (failure,) = [f for f in failures if "spread" in f.reason]
    assert failure.row.job.variant == "single-dense"
    assert failure.reason.startswith("accuracy spread ")
    assert " pts against " in failure.reason and "one-sided Brown-Forsythe p=" in failure.reason
    # `check` without --pooled-alpha is unchanged: no spread rule
    assert not any("spread" in f.reason for f in gate(compare(base, new)))


def test_harmless_change_with_the_same_spread_passes():
    rng = np.random.default_rng(4)
    failed = 0
    for _ in range(100):
        base = records(CLEAN, range(100, 116), rng)
        new = records(CLEAN, range(6), rng)  # other seeds, the same spread
        failed += any("spread" in f.reason for f in gate(compare(base, new), pooled_alpha=0.001))
    assert failed <= 2  # 0.1% expected


def test_fewer_than_three_seeds_a_side_gives_no_spread_verdict():
    rng = np.random.default_rng(5)
    base = records(CLEAN, range(100, 116), rng)
    new = records({"single-dense": (0.92, 0.0011), "two-dense": (0.955, 0.05)}, range(2), rng)
    assert not any("spread" in f.reason for f in gate(compare(base, new), pooled_alpha=0.01))


def test_identical_values_on_both_sides_pass_without_nan():
    base = [make_record("two-dense", seed=s, test_accuracy=0.95) for s in range(100, 104)]
    new = [make_record("two-dense", seed=s, test_accuracy=0.95) for s in range(4)]
    assert gate(compare(base, new), pooled_alpha=0.001) == []
    scattered = [
        make_record("two-dense", seed=s, test_accuracy=0.95 + d)
        for s, d in enumerate([-0.02, 0.01, -0.015, 0.02])
    ]
    reasons = [f.reason for f in gate(compare(base, scattered), pooled_alpha=0.01)]
    assert any(r.startswith("accuracy spread ") and "nan" not in r for r in reasons)


def test_gate_eval_counts_the_spread_rule_in_its_own_columns():
    gate_eval = benchmark("gate_eval")
    args = gate_eval.parse_args(["--base-seeds", "8", "--gate-seeds", "6", "--alpha", "0.01"])
    args.draws = 200
    rng = np.random.default_rng(0)
    clean = records(CLEAN, range(16), rng)
    wide = records({"single-dense": (0.92, 0.015), "two-dense": (0.955, 0.0033)}, range(8), rng)
    rows = gate_eval.evaluate({"clean": clean, "lr_scale=10": wide}, args)
    rate = {r["condition"]: r["fail_rate"] for r in rows}
    assert rate["lr_scale=10"]["pooled+spread@0.01"] > rate["lr_scale=10"]["pooled@0.01"] + 0.2
    assert rate["clean"]["pooled+spread@0.01"] < 0.05
    assert "pooled+spread fails @0.01" in gate_eval.render(rows, args)
