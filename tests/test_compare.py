"""Verdict logic of `compare` and the `check` gate, on records with hand-picked values."""

from __future__ import annotations

import pytest
from conftest import make_record
from mnist_bench.analyse.compare import BETTER, SAME, WORSE, Tolerances, compare, gate, match
from mnist_bench.runfile.records import Record


def rec(
    acc: float,
    seed: int = 0,
    *,
    variant="two-dense",
    backend="jax",
    seconds=10.0,
    status="ok",
    contended=False,
    **settings,
) -> Record:
    return make_record(
        variant,
        backend,
        "cpu" if status == "ok" else None,
        seed,
        status=status,
        test_accuracy=acc if status == "ok" else None,
        train_seconds=seconds,
        train_samples_per_second=60000 / seconds,
        infer_samples_per_second=1e5,
        contended=contended,
        **{"epochs": 3, **settings},
    )


def seeds(*accs: float, **kw) -> list[Record]:
    return [rec(a, i, **kw) for i, a in enumerate(accs)]


def test_one_seed_uses_the_accuracy_tolerance():
    [row] = compare([rec(0.970)], [rec(0.966)])  # -0.004: inside 0.005
    assert row.verdict == SAME and row.change("test_accuracy").p_value is None
    [row] = compare([rec(0.970)], [rec(0.964)])  # -0.006: outside
    assert row.change("test_accuracy").verdict == WORSE
    [row] = compare([rec(0.970)], [rec(0.976)])
    assert row.change("test_accuracy").verdict == BETTER


def test_one_seed_uses_the_time_tolerance():
    [row] = compare([rec(0.97, seconds=10.0)], [rec(0.97, seconds=10.9)])  # +9%: same
    assert row.change("train_seconds").verdict == SAME
    [row] = compare([rec(0.97, seconds=10.0)], [rec(0.97, seconds=11.5)])  # +15%: slower
    assert row.change("train_seconds").verdict == WORSE
    assert row.change("train_samples_per_second").verdict == WORSE
    assert row.verdict == WORSE


def test_seeds_use_welch():
    base = seeds(0.9700, 0.9702, 0.9701)
    # A drop of 0.002 with almost no spread: significant though inside the tolerance.
    [row] = compare(base, seeds(0.9680, 0.9682, 0.9681))
    change = row.change("test_accuracy")
    assert change.verdict == WORSE and change.p_value < 0.05
    # A drop of 0.006 buried in spread: not significant though outside the tolerance.
    [row] = compare(seeds(0.97, 0.99, 0.95), seeds(0.96, 0.99, 0.943))
    change = row.change("test_accuracy")
    assert change.verdict == SAME and change.p_value > 0.05


def test_aa_identical_runs_are_not_flagged():
    base = seeds(0.9711, 0.9702) + seeds(0.9236, 0.9245, variant="single-dense")
    rows = compare(base, [Record.from_dict(r.to_dict()) for r in base])
    assert {r.verdict for r in rows} == {SAME}
    assert gate(rows) == []


def test_gate_needs_a_drop_that_is_large_and_significant():
    base = seeds(0.970, 0.972, 0.971)
    assert gate(compare(seeds(0.9700, 0.9702), seeds(0.9680, 0.9682))) == []  # significant, small
    assert gate(compare(seeds(0.97, 0.99, 0.95), seeds(0.96, 0.99, 0.943))) == []  # noise
    [failure] = gate(compare(base, seeds(0.940, 0.942, 0.941)))
    assert failure.reason.startswith("accuracy -0.0300 (Welch p=")
    [failure] = gate(compare([rec(0.97)], [rec(0.96)]))  # one seed: the tolerance alone
    assert "-0.0100" in failure.reason


def test_gate_fails_exactly_the_regressed_rows():
    base = (
        seeds(0.971, 0.970)
        + seeds(0.924, 0.925, variant="single-dense")
        + seeds(0.972, 0.971, backend="torch")
    )
    new = (
        seeds(0.930, 0.931)
        + seeds(0.924, 0.925, variant="single-dense")
        + seeds(0.972, 0.971, backend="torch")
    )
    failures = gate(compare(base, new))
    assert [(f.row.label["variant"], f.row.label["backend"]) for f in failures] == [
        ("two-dense", "jax")
    ]


def test_failed_or_diverged_new_record_fails_the_gate():
    [failure] = gate(compare(seeds(0.97, 0.97), [rec(0.97), rec(0, 1, status="diverged")]))
    assert failure.reason.startswith("diverged")


def test_throughput_gate_is_off_by_default_and_ignores_contended_records():
    base, slow = [rec(0.97, seconds=10.0)], [rec(0.97, seconds=20.0)]
    assert gate(compare(base, slow)) == []
    [failure] = gate(compare(base, slow), max_slowdown=0.25)
    assert "train samples/s -50%" in failure.reason
    contended = [rec(0.97, seconds=20.0, contended=True)]
    rows = compare(base, contended)
    assert gate(rows, max_slowdown=0.25) == []
    assert rows[0].change("train_seconds").skipped == "contended"


def test_rows_on_one_side_are_listed_and_a_missing_baseline_row_fails():
    rows = compare(seeds(0.97), seeds(0.97, backend="torch"))
    assert sorted(r.side for r in rows) == ["base", "new"]
    [missing] = gate(rows)
    assert missing.row.side == "base" and missing.reason == "missing in the results"
    assert gate(rows, allow_missing=True) == []


def test_unlike_settings_never_match_and_say_what_differs():
    rows = match([rec(0.97)], [rec(0.96, epochs=1)])
    assert sorted(r.side for r in rows) == ["base", "new"]
    assert all(r.near == ["epochs 3 → 1"] for r in rows)
    [failure] = gate(judge_all(rows))
    assert failure.reason == "missing in the results (the results have it with epochs 3 → 1)"
    # Matched on purpose across settings: one row, the difference on it, a verdict.
    [row] = compare([rec(0.97)], [rec(0.96, epochs=1)], on=("variant", "backend", "device"))
    assert row.side == "both" and row.differences == ["epochs 3 → 1"]
    assert row.change("test_accuracy").verdict == WORSE
    # A grid with two learning rates on both sides: two rows, each matched.
    grid = [rec(0.97, learning_rate=1e-3), rec(0.96, learning_rate=3e-3)]
    assert [r.side for r in match(grid, grid)] == ["both", "both"]


def test_every_way_for_a_new_record_to_fail_fails_the_gate():
    base = seeds(0.97, 0.97)
    for status, error in (
        ("failed", "timeout: no progress for 180 s"),
        ("diverged", "loss became nan"),
        ("skipped", "no GPU visible to jax"),
    ):
        new = [rec(0.97), rec(0, 1, status=status)]
        new[1].error = error
        [failure] = gate(compare(base, new))
        assert failure.reason == f"{status}: {error}"
    # Skipped on both sides (no GPU anywhere): nothing to hold it to, no failure.
    both = [rec(0, status="skipped")]
    assert gate(compare(both, [rec(0, status="skipped")])) == []


def test_repeats_of_a_seed_are_one_sample():
    base = seeds(0.970, 0.972)
    new = [rec(0.960, 0), rec(0.960, 0)]  # seed 0 run twice: one sample, so no Welch test
    [row] = compare(base, new)
    change = row.change("test_accuracy")
    assert change.new == [0.960] and change.p_value is None


def test_different_devices_are_unlike():
    gpu = rec(0.97)
    gpu.device = "gpu"
    [row] = compare([rec(0.97)], [gpu])
    [failure] = gate([row])
    assert failure.reason == "unlike: ran on cpu → gpu" and row.changes == []


def judge_all(rows):
    from mnist_bench.analyse.compare import judge

    return [judge(r) for r in rows]


@pytest.mark.parametrize("tolerance,expected", [(0.001, WORSE), (0.02, SAME)])
def test_tolerance_is_configurable(tolerance, expected):
    [row] = compare([rec(0.97)], [rec(0.96)], Tolerances(accuracy=tolerance))
    assert row.change("test_accuracy").verdict == expected


# ------------------------------------------------------- records from several machines (Ray)
def _on(machine: str, seed: int, accuracy: float) -> Record:
    from mnist_bench.runfile.records import Machine

    r = make_record(seed=seed, test_accuracy=accuracy)
    r.machine = Machine(node_id=f"node-{machine}", hostname=machine, machine_id=machine)
    return r


def test_records_of_several_machines_are_rows_per_machine():
    """`--on-every-node` on both sides: one job on two machines is two rows, each matched with
    the same machine on the other side, never two seeds of one sample."""
    base = [_on(m, s, 0.97) for m in ("a", "b") for s in (0, 1)]
    new = [_on("a", s, 0.97) for s in (0, 1)] + [_on("b", s, 0.90) for s in (0, 1)]
    rows = {row.machine: row for row in compare(base, new)}
    assert set(rows) == {"a", "b"}
    assert all(row.side == "both" and len(row.base) == len(row.new) == 2 for row in rows.values())
    assert rows["a"].verdict == SAME and rows["b"].verdict == WORSE
    assert rows["b"].label["machine"] == "b"
    assert [f.row.machine for f in gate(compare(base, new))] == ["b"]


def test_one_machine_is_compared_with_each_machine_of_the_other_side():
    """A local baseline (one machine) against an `--on-every-node` run: each node's records are
    judged against the whole baseline; a node that regressed fails alone."""
    base = [make_record(seed=s, test_accuracy=0.97) for s in (0, 1)]
    new = [_on("a", s, 0.97) for s in (0, 1)] + [_on("b", s, 0.90) for s in (0, 1)]
    rows = compare(base, new)
    assert sorted(row.machine for row in rows) == ["a", "b"]
    assert all(len(row.base) == 2 and len(row.new) == 2 for row in rows)
    assert [f.row.machine for f in gate(rows)] == ["b"]
    # Each side on one machine (two local runs from different hosts): matched across machines.
    single = compare(base, [_on("a", s, 0.97) for s in (0, 1)])
    assert [(row.machine, row.side) for row in single] == [("", "both")]


# ------------------------------------------- timing over several runs a side: flagged runs out
def timed(seconds: list[float], **flags) -> list[Record]:
    """One record per seed with these train seconds; `flags`: seed -> "unstable"/"contended"."""
    return [
        rec(0.97, i, seconds=s, **({flags[f"s{i}"]: True} if f"s{i}" in flags else {}))
        for i, s in enumerate(seconds)
    ]


def test_a_slowdown_is_caught_among_runs_one_of_which_is_flagged():
    """Five runs a side, all twice as slow but one flagged: the four left are judged (before,
    the one flag took the timing verdict from all five, and the gate let the slowdown pass)."""
    base = timed([10.0, 10.1, 9.9, 10.05, 9.95])
    for flag in ("unstable", "contended"):
        new = timed([20.0, 20.2, 19.8, 20.1, 10.0], s4=flag)  # the flagged one looks fine
        [row] = compare(base, new)
        change = row.change("train_samples_per_second")
        assert change.skipped is None and change.left_out == 1 and change.verdict == WORSE
        assert len(change.new) == 4 and change.relative == pytest.approx(-0.5, abs=0.01)
        [failure] = gate([row], max_slowdown=0.25)
        assert "train samples/s -50%" in failure.reason
    # a flagged run on the baseline's side is left out alike
    [row] = compare(timed([10.0, 10.1, 9.9, 30.0], s3="unstable"), timed([20.0, 20.2, 19.8]))
    assert row.change("train_seconds").left_out == 1 and gate([row], max_slowdown=0.25)


def test_a_flagged_run_far_off_does_not_make_equal_sides_differ():
    """Harmless: equal runs on both sides, plus one flagged run at three times the time."""
    base = timed([10.0, 10.1, 9.9, 10.05])
    new = timed([10.05, 9.95, 10.0, 30.0], s3="unstable")
    [row] = compare(base, new)
    for name in ("train_seconds", "train_samples_per_second"):
        change = row.change(name)
        assert change.verdict == SAME and change.left_out == 1 and change.skipped is None
    assert gate([row], max_slowdown=0.03) == [] and row.verdict == SAME


def test_no_timing_verdict_where_a_side_keeps_fewer_than_two_unflagged_runs():
    """Two unflagged runs a side are what Welch's test needs; with fewer, a flagged run leaves
    the row without a timing verdict, as it always did (one run a side: the 10% tolerance is
    for sides that had nothing to leave out)."""
    base = timed([10.0, 10.1, 9.9])
    for flags, why in (
        ({"s0": "unstable", "s1": "unstable"}, "unstable"),
        ({"s0": "contended", "s1": "unstable"}, "contended"),
        ({"s1": "unstable", "s2": "unstable"}, "unstable"),  # one unflagged run left
    ):
        new = timed([20.0, 20.0, 20.0], **flags)
        [row] = compare(base, new)
        change = row.change("train_samples_per_second")
        assert change.skipped == why and change.left_out == 0
        assert gate([row], max_slowdown=0.25) == []  # accuracy unchanged, timing not judged
        assert row.change("test_accuracy").skipped is None  # accuracy is judged all the same
