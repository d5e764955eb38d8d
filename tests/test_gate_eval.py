"""benchmarks/gate_eval.py's resampling, on pools of records made here (the training it drives
is the worker's, tested in test_inject_bug.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import benchmark, make_record

gate_eval = benchmark("gate_eval")


def pool(shift: float, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [
        make_record(variant, seed=s, test_accuracy=float(mean - shift + rng.normal(0, 0.001)))
        for variant, mean in (("single-dense", 0.92), ("two-dense", 0.955))
        for s in range(12)
    ]


def test_a_bug_fails_most_draws_and_a_harmless_change_few():
    args = gate_eval.parse_args(["--pool-seeds", "12", "--base-seeds", "6", "--gate-seeds", "6"])
    args.draws = 300
    rows = gate_eval.evaluate(
        {"clean": pool(0, 0), "seed_offset=1000": pool(0, 1), "label_noise=0.05": pool(0.005, 2)},
        args,
    )
    by = {r["condition"]: r for r in rows}
    assert by["label_noise=0.05"]["fail_rate"]["pooled"] > 0.95
    assert by["label_noise=0.05"]["change"]["single-dense/jax"] < -0.004
    assert by["seed_offset=1000"]["harmless"] and not by["label_noise=0.05"]["harmless"]
    assert by["seed_offset=1000"]["fail_rate"]["pooled"] < 0.1
    assert by["clean"]["change"]["two-dense/jax"] == 0
    text = gate_eval.render(rows, args)
    assert "label_noise=0.05" in text and "pooled fails" in text


def test_conditions_always_start_clean_and_bad_ones_stop_before_training(tmp_path, capsys):
    assert gate_eval.conditions("lr_scale=10; no_shuffle") == ["clean", "lr_scale=10", "no_shuffle"]
    assert gate_eval.main(["--conditions", "bogus", "--pools", str(tmp_path)]) == 2
    assert "unknown change 'bogus'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_pool_sizes_per_condition_and_a_clean_pool_holding_both_sides(tmp_path, capsys):
    assert gate_eval.split_size("unscaled@8", 16) == ("unscaled", 8)
    assert gate_eval.split_size("label_noise=0.05", 16) == ("label_noise=0.05", 16)
    args = gate_eval.parse_args(["--base-seeds", "16", "--gate-seeds", "6"])
    gate_eval.check_sizes({"clean": 22, "unscaled": 6}, args)
    for sizes, says in (
        ({"clean": 21}, "must hold"),
        ({"clean": 24, "unscaled": 5}, "cannot give"),
    ):
        try:
            gate_eval.check_sizes(sizes, args)
        except ValueError as exc:
            assert says in str(exc)
        else:
            raise AssertionError(sizes)
    code = gate_eval.main(["--conditions", "clean@20,unscaled@x", "--pools", str(tmp_path)])
    assert code == 2 and "whole number" in capsys.readouterr().err
    code = gate_eval.main(["--base-seeds", "16", "--gate-seeds", "6", "--conditions", "clean@20"])
    assert code == 2 and "must hold" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_pool_as_small_as_the_gate_run_serves_every_draw():
    args = gate_eval.parse_args(["--base-seeds", "6", "--gate-seeds", "4"])
    args.draws = 200
    small = [r for r in pool(0.005, 3) if r.seed < 4]  # 4 seeds: every draw takes all of them
    rows = gate_eval.evaluate({"clean": pool(0, 0), "unscaled": small}, args)
    by = {r["condition"]: r for r in rows}
    assert by["unscaled"]["pool_seeds"] == 4 and by["clean"]["pool_seeds"] == 12
    assert by["unscaled"]["fail_rate"]["pooled"] > 0.95
    assert by["clean"]["fail_rate"]["pooled"] < 0.1


def test_several_alphas_one_column_each_and_the_docs_markdown_table():
    args = gate_eval.parse_args(["--base-seeds", "6", "--gate-seeds", "6", "--alpha", "0.01,1e-9"])
    args.draws = 100
    rows = gate_eval.evaluate({"clean": pool(0, 0), "label_noise=0.05": pool(0.002, 2)}, args)
    rate = {r["condition"]: r["fail_rate"] for r in rows}["label_noise=0.05"]
    assert rate["pooled"] == rate["pooled@0.01"] >= rate["pooled@1e-09"]
    assert rate["pooled@1e-09"] < 1.0  # a far stricter alpha misses some draws
    table = gate_eval.markdown(rows, args).splitlines()
    assert table[0].startswith("| condition | kind | pool seeds | single-dense/jax | two-dense/jax")
    assert table[0].endswith(
        "| jobs failed | `check` fails | pooled 0.01 fails | pooled+spread 0.01 fails "
        "| pooled+spread+rank 0.01 fails | pooled 1e-09 fails | pooled+spread 1e-09 fails "
        "| pooled+spread+rank 1e-09 fails |"
    )
    assert table[3].startswith("| `label_noise=0.05` | bug | 12 | -0.")
    assert "pooled fails @0.01" in gate_eval.render(rows, args)
    for bad in ("0", "x", "0.01,2"):
        with pytest.raises(SystemExit):
            gate_eval.parse_args(["--alpha", bad])


def test_a_diverged_job_fails_the_draw_under_both_rules():
    args = gate_eval.parse_args(["--base-seeds", "6", "--gate-seeds", "6"])
    args.draws = 100
    bug = pool(0, 3)
    for r in bug:
        if r.variant == "two-dense":  # every two-dense job diverged, single-dense is untouched
            r.status, r.test_accuracy = "diverged", None
    rows = gate_eval.evaluate({"clean": pool(0, 0), "unscaled": bug}, args)
    row = {r["condition"]: r for r in rows}["unscaled"]
    assert row["fail_rate"]["check"] == row["fail_rate"]["pooled"] == 1.0
    assert row["change"]["two-dense/jax"] is None and row["failed_records"] == 12


def test_a_shift_is_the_clean_pool_moved_down_without_training(tmp_path, capsys):
    assert gate_eval.parse_shift("shift=0.005") == (0.005, None)
    assert gate_eval.parse_shift("shift=0.005:two-dense") == (0.005, "two-dense")
    assert gate_eval.parse_shift("label_noise=0.05") is None
    clean = pool(0, 0)
    moved = gate_eval.shifted(clean, 0.005, "two-dense")
    for before, after in zip(clean, moved, strict=True):
        lower = 0.005 if before.variant == "two-dense" else 0.0
        assert after.test_accuracy == pytest.approx(before.test_accuracy - lower)
        assert after.seed == before.seed
    args = gate_eval.parse_args(["--base-seeds", "6", "--gate-seeds", "6"])
    args.draws = 100
    rows = gate_eval.evaluate({"clean": clean, "shift=0.005:two-dense": moved}, args)
    by = {r["condition"]: r for r in rows}["shift=0.005:two-dense"]
    assert by["change"]["two-dense/jax"] == pytest.approx(-0.005)
    assert by["change"]["single-dense/jax"] == 0 and not by["harmless"]
    assert by["fail_rate"]["pooled+spread+rank@0.01"] == 1.0
    for bad in ("shift=0", "shift=x", "shift=1.5"):
        assert gate_eval.main(["--conditions", bad, "--pools", str(tmp_path)]) == 2
        assert "a shift is a fraction of accuracy in (0, 1)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained
