"""Power analysis (`analyse.power`, `mnist-bench power`): against textbook values, the closed
forms, and a simulation of the gate's own rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import ROOT
from mnist_bench.analyse import power as p
from mnist_bench.cli import main


def test_two_sided_power_matches_cohens_table():
    # Cohen (1988), table 2.3.1: d = 0.5 with 64 per group, two-sided 0.05 -> 0.80;
    # d = 1 with 17 per group -> 0.81 (the noncentral t gives 0.8015 and 0.8070)
    assert p.row_power(0.5, 1.0, 64, 64, 0.05, sides=2) == pytest.approx(0.8015, abs=5e-4)
    assert p.row_power(1.0, 1.0, 17, 17, 0.05, sides=2) == pytest.approx(0.8070, abs=5e-4)


def test_no_drop_fails_at_alpha_on_the_drop_side():
    assert p.row_power(0.0, 0.002, 3, 3, 0.05, sides=1) == pytest.approx(0.05, abs=1e-6)
    assert p.row_power(0.0, 0.002, 3, 3, 0.05, sides=2) == pytest.approx(0.025, abs=1e-6)


def test_the_tolerance_path_agrees_with_the_closed_form_at_zero_tolerance():
    closed = p.row_power(0.004, 0.003, 4, 4, 0.01, sides=1, tolerance=0.0)
    integral = p.row_power(0.004, 0.003, 4, 4, 0.01, sides=1, tolerance=1e-12)
    assert integral == pytest.approx(closed, abs=1e-6)


@pytest.mark.parametrize("drop, tolerance", [(0.0, 0.005), (0.005, 0.005), (0.008, 0.003)])
def test_power_with_a_tolerance_matches_a_simulation_of_checks_rule(drop, tolerance):
    sigma, n, alpha = 0.004, 3, 0.05
    rng = np.random.default_rng(0)
    base = rng.normal(0.97, sigma, (200_000, n))
    new = rng.normal(0.97 - drop, sigma, (200_000, n))
    d = base.mean(1) - new.mean(1)
    se = np.sqrt((base.var(1, ddof=1) + new.var(1, ddof=1)) / n)
    t_crit = p.critical_t(alpha, 2, 2 * n - 2)
    simulated = np.mean((d > tolerance) & (d / se > t_crit))
    exact = p.row_power(drop, sigma, n, n, alpha, sides=2, tolerance=tolerance)
    assert exact == pytest.approx(simulated, abs=0.004)


def test_min_detectable_drop_is_above_the_normal_approximation_and_meets_it_with_many_seeds():
    def t_mdd(n):
        return p.min_detectable(lambda d: p.row_power(d, 0.002, n, n, 0.01, 1), 0.9)

    assert t_mdd(3) > 1.3 * p.normal_min_detectable(0.002, 3, 3, 0.01, 0.9)
    assert t_mdd(200) == pytest.approx(
        p.normal_min_detectable(0.002, 200, 200, 0.01, 0.9), rel=0.01
    )
    # (z_0.99 + z_0.9) * sqrt(2 / 200) * 0.002, by hand: (2.3263 + 1.2816) * 0.1 * 0.002
    assert p.normal_min_detectable(0.002, 200, 200, 0.01, 0.9) == pytest.approx(7.2158e-4, rel=1e-4)
    assert p.min_detectable(lambda d: p.row_power(d, 0.002, 3, 3, 0.01, 1), 0.9) == pytest.approx(
        t_mdd(3)
    )
    assert p.min_detectable(lambda d: 0.0, 0.9) == math.inf


def test_gate_power_combines_rows_and_corrects_for_them():
    rule = p.Rule(alpha=0.05, sides=1, tolerance=0.0)
    one = p.row_power(0.003, 0.002, 3, 3, 0.05, 1)
    assert p.gate_power(0.003, [0.002] * 4, 3, 3, rule) == pytest.approx(1 - (1 - one) ** 4)
    assert p.gate_power(0.0, [0.002] * 9, 3, 3, rule) == pytest.approx(1 - 0.95**9)
    bonferroni = p.Rule(alpha=0.05, sides=1, tolerance=0.0, correction="bonferroni")
    assert p.gate_power(0.0, [0.002] * 9, 3, 3, bonferroni) == pytest.approx(
        1 - (1 - 0.05 / 9) ** 9
    )
    assert p.gate_power(0.0, [0.002] * 9, 3, 3, bonferroni) < 0.05


def test_pooling_k_rows_is_about_one_row_with_k_times_the_seeds():
    pooled = p.Rule(alpha=0.01, sides=1, tolerance=0.0, pooled=True)
    assert p.gate_power(0.0, [0.002] * 6, 3, 3, pooled) == pytest.approx(0.01, abs=1e-9)
    assert p.gate_power(0.002, [0.002] * 6, 3, 3, pooled) == pytest.approx(
        p.row_power(0.002, 0.002, 18, 18, 0.01, 1), abs=0.03
    )  # the same standard error; 24 degrees of freedom against 34
    # one row of six dropping is diluted to a sixth of it
    assert p.one_row_power(0.006, 0.002, 6, 3, 3, pooled) == pytest.approx(
        p.gate_power(0.001, [0.002] * 6, 3, 3, pooled)
    )


def test_cheapest_suite_is_within_budget_reaches_the_target_and_is_cheapest_first():
    rule = p.Rule(alpha=0.01, sides=1, tolerance=0.0, pooled=True)
    sigmas, seconds = [0.001, 0.003, 0.005], [10.0, 10.0, 30.0]
    found = p.cheapest(sigmas, seconds, drop=0.005, power=0.9, rule=rule, budget=120)
    assert found and all(c.seconds <= 120 and c.power >= 0.9 for c in found)
    assert [c.seconds for c in found] == sorted(c.seconds for c in found)
    assert found[0].rows == (0,)  # the quiet, cheap row alone
    assert found[0].false_alarm == pytest.approx(0.01, abs=1e-9)
    assert p.cheapest(sigmas, seconds, drop=0.005, power=0.9, rule=rule, budget=5) == []


def test_power_command_reads_the_baseline_and_states_its_assumptions(capsys):
    baseline = str(ROOT / "results" / "baseline")
    flags = ["--alpha", "0.01", "--sides", "1", "--tolerance", "0", "--pooled"]
    assert main(["power", baseline, *flags]) == 0
    out = capsys.readouterr().out
    assert "single-dense/jax 2ep 60k" in out and "min detectable drop" in out
    assert "assumptions:" in out and "cheapest suites" in out
    assert main(["power", baseline, *flags, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule"] == {
        "alpha": 0.01,
        "sides": 1,
        "tolerance": 0.0,
        "correction": "none",
        "pooled": True,
    }
    assert len(data["rows"]) == 9 and data["false_alarm"] == pytest.approx(0.01, abs=1e-6)
    assert all(c["power"] >= 0.9 and c["seconds"] <= 180 for c in data["candidates"])


@pytest.mark.parametrize(
    "args, words",
    [
        (["--alpha", "0"], "--alpha must be"),
        (["--power", "1.5"], "--power must be"),
        (["--drop", "nan"], "--drop must be"),
        (["--max-seeds", "1"], "--max-seeds must be"),
    ],
)
def test_power_command_refuses_bad_numbers_in_one_line(args, words, capsys):
    assert main(["power", str(ROOT / "results" / "baseline"), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_power_api_needs_rows_with_two_seeds(tmp_path):
    import mnist_bench

    data = json.loads((ROOT / "results" / "baseline" / "ci.json").read_text())
    data["records"] = [r for r in data["records"] if r["job"]["seed"] == 0]  # one seed: no spread
    path = tmp_path / "one-seed.json"
    path.write_text(json.dumps(data))
    with pytest.raises(mnist_bench.Error, match="two or more seeds"):
        mnist_bench.api.power(path)


def test_pooled_drop_test_by_hand():
    # one row: base 1,2,3 (mean 2), new 0,1,2 (mean 1): pooled variance 1, se sqrt(2/3),
    # t = 1 / sqrt(2/3) = 1.2247 on 4 degrees of freedom -> one-sided p = 0.1439
    drop, p_value = p.pooled_drop_test([([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])])
    assert drop == pytest.approx(1.0) and p_value == pytest.approx(0.1439, abs=1e-4)
    # two equal rows: drop 1, se sqrt(2 * 2/3) / 2 = 0.5774, t = 1.7321 on 8 -> p = 0.0608
    drop, p_value = p.pooled_drop_test([([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])] * 2)
    assert p_value == pytest.approx(0.0608, abs=1e-4)
    assert p.pooled_drop_test([([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])])[1] > 0.5  # a rise
    assert p.pooled_drop_test([([1.0], [0.0])])[1] == 1.0
