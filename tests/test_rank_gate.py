"""The rank signal of `check --pooled-alpha`: a row fails when its seeds rank significantly
lower than the baseline's (`power.rank_drop_test`, one-sided exact Mann-Whitney), a drop test
whose false-alarm rate holds whatever the shape of the seeds' spread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import benchmark, make_record
from mnist_bench.analyse.compare import compare, gate
from mnist_bench.analyse.power import lower_ranks, rank_drop_test
from scipy import stats

BASE = [0.951, 0.9525, 0.953, 0.9541, 0.955, 0.9502, 0.9533, 0.9519]
LOWER = [0.9471, 0.9488, 0.9431, 0.9495, 0.9512, 0.9380]


def test_rank_test_is_mann_whitney_one_sided_and_exact():
    result = rank_drop_test(BASE, LOWER)
    want = stats.mannwhitneyu(LOWER, BASE, alternative="less", method="exact")
    assert result is not None
    assert result.p_value == pytest.approx(want.pvalue, rel=1e-12)
    assert result.u == want.statistic == 2  # one new value (0.9512) above two baseline values
    assert (result.base_seeds, result.new_seeds) == (8, 6)
    # exact: U <= 2 is 4 of the C(14, 6) = 3003 orderings (U = 0, 1, and 2 twice)
    assert result.p_value == pytest.approx(4 / math.comb(14, 6))
    # one-sided: higher new values are no evidence of a drop
    higher = rank_drop_test(BASE, [v + 0.02 for v in LOWER])
    assert higher is not None and higher.u == 48 and higher.p_value == 1.0


def test_fewer_than_three_seeds_a_side_gives_no_verdict():
    assert rank_drop_test(BASE, LOWER[:2]) is None
    assert rank_drop_test(BASE[:2], LOWER) is None
    assert rank_drop_test(BASE[:3], LOWER[:3]) is not None


def test_identical_values_give_p_one_not_nan():
    flat = [0.95] * 5
    result = rank_drop_test(flat, flat)
    assert result is not None and not math.isnan(result.p_value) and result.p_value > 0.5


def test_lower_ranks_corrects_for_the_number_of_rows():
    p = rank_drop_test(BASE, LOWER).p_value  # type: ignore[union-attr]
    alpha = 1.5 * p  # p < alpha, but p > alpha / 2
    assert [i for i, _, _ in lower_ranks([(BASE, LOWER)], alpha)] == [0]
    assert lower_ranks([(BASE, LOWER), (BASE, BASE)], alpha) == []
    # a row without a verdict does not count against the others
    assert [i for i, _, _ in lower_ranks([(BASE, LOWER), (BASE, BASE[:2])], alpha)] == [0]


def records(values: dict[str, list[float]], first_seed: int) -> list:
    return [
        make_record(variant, seed=first_seed + i, test_accuracy=float(v))
        for variant, row in values.items()
        for i, v in enumerate(row)
    ]


CLEAN = {"single-dense": (0.9155, 0.0013), "two-dense": (0.9528, 0.0035)}


def clean_values(rng, n: int) -> dict[str, list[float]]:
    return {k: list(rng.normal(mean, sd, n)) for k, (mean, sd) in CLEAN.items()}


def test_a_drop_of_one_row_that_pooling_dilutes_fails_on_ranks():
    # label_noise=0.05's shape: single-dense's seeds all about 0.35 points lower, two-dense's
    # not; the pooled t-test, diluted by two-dense and its baseline's one seed far below the
    # rest (its heavy low tail), does not reject at 0.001
    rng = np.random.default_rng(4)
    base = clean_values(rng, 16)
    base["two-dense"][0] -= 0.012
    new = clean_values(rng, 6)
    new["single-dense"] = [v - 0.0035 for v in new["single-dense"]]
    failures = gate(compare(records(base, 100), records(new, 0)), pooled_alpha=0.001)
    reasons = [(f.row.job.variant, f.reason) for f in failures]
    assert not any(r.startswith("pooled accuracy") for _, r in reasons)
    (rank,) = [(v, r) for v, r in reasons if "Mann-Whitney" in r]
    assert rank[0] == "single-dense"
    assert rank[1].startswith("accuracy ranks lower: U=0 of 96 (one-sided Mann-Whitney p=")
    assert rank[1].endswith(" < 0.0005)")
    # `check` without --pooled-alpha is unchanged: no rank rule
    plain = gate(compare(records(base, 100), records(new, 0)))
    assert not any("Mann-Whitney" in f.reason for f in plain)


def test_other_seeds_with_the_same_spread_pass():
    rng = np.random.default_rng(4)
    failed = 0
    for _ in range(200):
        rows = compare(records(clean_values(rng, 16), 100), records(clean_values(rng, 6), 0))
        failed += any("Mann-Whitney" in f.reason for f in gate(rows, pooled_alpha=0.001))
    assert failed <= 2  # at most 0.1% expected (0.05% a row)


def test_a_heavy_low_tail_on_both_sides_is_no_drop():
    # two-dense's shape: most seeds close together, now and then one far below, on both sides
    rng = np.random.default_rng(6)
    failed = 0
    for _ in range(200):
        base, new = clean_values(rng, 16), clean_values(rng, 6)
        for row in (base["two-dense"], new["two-dense"]):
            row[0] -= 0.012  # each side has its outlier
        rows = compare(records(base, 100), records(new, 0))
        failed += any("Mann-Whitney" in f.reason for f in gate(rows, pooled_alpha=0.001))
    assert failed <= 2


def test_gate_eval_counts_the_rank_rule_in_its_own_column():
    gate_eval = benchmark("gate_eval")
    args = gate_eval.parse_args(["--base-seeds", "10", "--gate-seeds", "6", "--alpha", "0.001"])
    args.draws = 200
    rng = np.random.default_rng(0)
    clean = records(clean_values(rng, 16), 0)
    lower = clean_values(rng, 8)
    lower["single-dense"] = [v - 0.004 for v in lower["single-dense"]]
    rows = gate_eval.evaluate({"clean": clean, "label_noise=0.05": records(lower, 0)}, args)
    rate = {r["condition"]: r["fail_rate"] for r in rows}
    bug, harmless = rate["label_noise=0.05"], rate["clean"]
    assert bug["pooled+spread+rank@0.001"] > bug["pooled+spread@0.001"] + 0.2
    assert bug["pooled+spread+rank@0.001"] > 0.9
    assert harmless["pooled+spread+rank@0.001"] <= 0.02


def test_a_row_failing_several_ways_is_one_failure_with_every_reason(tmp_path):
    # single-dense far lower and scattered: the pooled drop, the spread and the ranks all
    # name it; `check` counts it once, one table row with the three reasons
    rng = np.random.default_rng(2)
    base = clean_values(rng, 16)
    new = clean_values(rng, 6)
    new["single-dense"] = [0.90, 0.905, 0.895, 0.91, 0.889, 0.902]
    failures = gate(compare(records(base, 100), records(new, 0)), pooled_alpha=0.001)
    assert [f.row.job.variant for f in failures] == ["single-dense"]
    reasons = failures[0].reason.split("; ")
    assert [r.split(" ")[1] for r in reasons] == ["accuracy", "spread", "ranks"]
    assert reasons[0].startswith("pooled accuracy")
