"""Timings that say when they cannot be trusted: each record's steady-epoch dispersion and CPU
steal share, the `unstable` flag in tables and CSV, and flagged timings kept out of
`check --max-slowdown` (issue 12, point 10)."""

from __future__ import annotations

import collections
import csv
import importlib.util
import io
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import BACKEND, INSTALLED, ROOT, make_record, needs_backend, only_run, run_cli
from mnist_bench import cli
from mnist_bench.analyse import rows
from mnist_bench.execute.training import (
    UNSTABLE_CV,
    ContentionProbe,
    is_unstable,
    steady_dispersion,
)
from mnist_bench.runfile import storage
from mnist_bench.runfile.records import SCHEMA_VERSION, Record, RunFile, load_run


# ------------------------------------------------------------------------ the dispersion
def test_dispersion_of_steady_epochs_by_hand():
    # The first epoch (tracing, compilation) is left out: 9 s does not count.
    assert steady_dispersion([9.0, 2.0, 2.0, 2.0, 2.0]) == (0.0, 1.0)
    # Steady 2.0 and 2.5: mean 2.25, sample std sqrt(0.25**2 * 2 / 1) = 0.353553.
    cv, max_min = steady_dispersion([10.0, 2.0, 2.5])
    assert cv == pytest.approx(0.353553 / 2.25, rel=1e-5)
    assert max_min == 1.25


def test_the_bimodal_tensorflow_record_of_issue_12_is_unstable():
    # Steady [2.68, 5.02, 5.00, 2.62]: mean 3.83, deviations -1.15, 1.19, 1.17, -1.21,
    # squares summing to 5.5716, std sqrt(5.5716 / 3) = 1.362791.
    cv, max_min = steady_dispersion([2.85, 2.68, 5.02, 5.00, 2.62])
    assert cv == pytest.approx(1.362791 / 3.83, rel=1e-5)
    assert max_min == pytest.approx(5.02 / 2.62)
    assert cv >= UNSTABLE_CV and is_unstable([2.85, 2.68, 5.02, 5.00, 2.62])
    # A quiet record's epochs agree within a few per cent.
    cv, _ = steady_dispersion([2.85, 2.51, 2.49, 2.55, 2.52])
    assert cv < UNSTABLE_CV and not is_unstable([2.85, 2.51, 2.49, 2.55, 2.52])


def test_a_warm_up_tail_is_not_unstable_but_quiet_flips_are():
    """Measured on a quiet machine: JAX still warming up in its second epoch has a CV of 0.18
    but its other steady epochs agree (MAD / median 0.04); TensorFlow's flips between two
    speeds (MAD / median 0.16) are what the flag is for."""
    jax = [1.04, 0.86, 0.65, 0.62, 0.60]
    assert steady_dispersion(jax)[0] > UNSTABLE_CV and not is_unstable(jax)
    assert is_unstable([1.97, 1.65, 2.88, 2.30, 1.70])
    assert not is_unstable([]) and not is_unstable([3.0, 1.0]) and not is_unstable([3.0, 1.0, 0.0])


@pytest.mark.parametrize("epochs", [[], [3.0], [3.0, 1.0], [3.0, 1.0, 0.0]])
def test_no_dispersion_from_fewer_than_two_steady_epochs(epochs):
    assert steady_dispersion(epochs) is None


# -------------------------------------------------------------------------- steal time
def test_probe_measures_steal_where_the_os_counts_it():
    with ContentionProbe() as probe:
        sum(range(10**5))
    assert probe.share >= 0.0 and (probe.steal is None or 0.0 <= probe.steal <= 1.0)
    if hasattr(psutil.cpu_times(), "steal"):  # Linux
        assert probe.steal is not None


def test_probe_without_steal_as_on_macos(monkeypatch):
    """macOS's cpu_times has no `steal`: the probe says None and judges on the share alone."""
    real = psutil.cpu_times
    mac = collections.namedtuple("scputimes", "user nice system idle")

    def cpu_times(percpu=False):
        t = real()
        return mac(t.user, t.nice, t.system, t.idle)

    monkeypatch.setattr(psutil, "cpu_times", cpu_times)
    with ContentionProbe() as probe:
        sum(range(10**5))
    assert probe.steal is None
    assert probe.contended == (probe.share > 0.25)


@needs_backend
def test_a_real_record_carries_its_dispersion_steal_and_flag(tmp_path):
    result = run_cli(
        "run", "-b", BACKEND, "-v", "two-dense", "--epochs", "3", "--train-limit", "2000",
        "--test-limit", "500", "--infer-batch-sizes", "32", "--no-figures",
        "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [record] = only_run(tmp_path).records
    cv, max_min = steady_dispersion(record.epoch_seconds)
    assert record.steady_epoch_cv == cv and record.steady_epoch_max_min == max_min
    if record.steady_interval:  # windows: the flag asks how well the median is pinned down
        low, high = record.steady_interval
        assert low <= record.steady_seconds_per_1k <= high
        assert record.unstable == ((high - low) / 2 >= 0.10 * record.steady_seconds_per_1k)
    else:  # no windows: the steady epochs' MAD
        assert record.unstable == is_unstable(record.epoch_seconds)
    assert set(record.contention) >= {"other_cpu_share", "loadavg_1m"}
    if hasattr(psutil.cpu_times(), "steal"):
        assert 0.0 <= record.contention["steal_share"] <= 1.0


# ------------------------------------------------------------------- tables and CSV
def timed(seed: int = 0, *, seconds: float = 10.0, unstable: bool = False, **fields) -> Record:
    epochs = [seconds, seconds, seconds * (1.5 if unstable else 1.0)]
    cv, max_min = steady_dispersion(epochs)
    return make_record(
        seed=seed,
        epochs=3,
        status="ok",
        test_accuracy=0.97,
        epoch_seconds=epochs,
        train_seconds=sum(epochs),
        train_samples_per_second=60000 / seconds,
        infer_samples_per_second=1e5,
        steady_epoch_cv=cv,
        steady_epoch_max_min=max_min,
        unstable=unstable,
        contention={"other_cpu_share": 0.01, "steal_share": 0.002, "loadavg_1m": 0.3},
        **fields,
    )


def save(path: Path, run_id: str, records: list[Record]) -> str:
    run = RunFile(
        run_id,
        "2026-11-25T00:00:00Z",
        {},
        {"machine_id": "abc"},
        records,
        schema_version=SCHEMA_VERSION,
    )
    storage.write_json(path, run.to_dict())
    return str(path)


def test_status_text_names_each_flag():
    def status(*records: Record) -> str:
        [row] = rows.rows(records)
        return rows.status_text(row)

    assert status(timed()) == "ok"
    assert status(timed(), timed(1, unstable=True)) == "ok (unstable)"
    assert status(timed(contended=True, unstable=True)) == "ok (contended) (unstable)"


def test_flag_in_table_markdown_and_csv(tmp_path, capsys):
    path = save(tmp_path / "run.json", "r1", [timed(0), timed(1, unstable=True)])
    assert load_run(path).records[1].unstable  # the field round-trips

    def report(*args: str) -> str:
        assert cli.main(["report", path, *args]) == 0
        return capsys.readouterr().out

    assert "ok (unstable)" in report()
    assert "ok (unstable)" in report("--format", "markdown")
    [row] = csv.DictReader(io.StringIO(report("--format", "csv")))
    assert (row["contended"], row["unstable"]) == ("False", "True")
    raw = list(csv.DictReader(io.StringIO(report("--format", "csv", "--raw"))))
    assert [r["unstable"] for r in raw] == ["False", "True"]
    assert float(raw[1]["steady_epoch_cv"]) == pytest.approx(5 / math.sqrt(2) / 12.5)
    assert float(raw[1]["steady_epoch_max_min"]) == 1.5
    assert [r["steal_share"] for r in raw] == ["0.002", "0.002"]


def test_a_file_without_the_new_fields_still_loads(tmp_path):
    path = tmp_path / "old.json"
    save(path, "r1", [timed()])
    data = json.loads(path.read_text())
    for name in ("steady_epoch_cv", "steady_epoch_max_min", "unstable"):
        del data["records"][0][name]
    path.write_text(json.dumps(data))
    record = load_run(path).records[0]
    assert (record.steady_epoch_cv, record.unstable) == (None, False)


# ------------------------------------------------------------------------------ the gate
@pytest.mark.parametrize("unstable", [False, True])
def test_max_slowdown_ignores_unstable_records(tmp_path, capsys, unstable):
    """Throughput halved: an unflagged record fails `--max-slowdown 0.25`, an unstable one
    (on either side) is not judged on timing, as a contended one is not."""
    base = save(tmp_path / "base.json", "base", [timed(seconds=10.0)])
    new = save(tmp_path / "new.json", "new", [timed(seconds=20.0, unstable=unstable)])
    code = cli.main(["check", new, "--baseline", base, "--max-slowdown", "0.25"])
    out = capsys.readouterr().out
    if unstable:
        assert code == 0, out
    else:
        assert code == 1 and "train samples/s -50%" in out
    assert cli.main(["check", new, "--baseline", base]) == 0  # off by default either way
    capsys.readouterr()
    assert cli.main(["compare", base, new, "--format", "markdown"]) == 0  # no caption
    assert ("†" in capsys.readouterr().out) == unstable


def test_check_judges_the_unflagged_runs_and_compare_says_how_many_are_out(tmp_path, capsys):
    """Three runs a side, the new ones twice as slow, one of them unstable: `check
    --max-slowdown` fails on the two left, and compare's cell and JSON say one was left out."""
    base = save(tmp_path / "base.json", "base", [timed(s, seconds=10.0) for s in range(3)])
    new = save(
        tmp_path / "new.json",
        "new",
        [timed(0, seconds=20.0), timed(1, seconds=20.0), timed(2, seconds=20.0, unstable=True)],
    )
    assert cli.main(["check", new, "--baseline", base, "--max-slowdown", "0.25"]) == 1
    assert "train samples/s -50%" in capsys.readouterr().out
    assert cli.main(["compare", base, new, "--format", "markdown"]) == 0
    assert "(1 flagged left out)" in capsys.readouterr().out
    assert cli.main(["compare", base, new, "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["rows"]
    timing = row["metrics"]["train_samples_per_second"]
    assert timing["left_out"] == 1 and len(timing["new_values"]) == 2
    assert row["metrics"]["test_accuracy"]["left_out"] == 0


# ------------------------------------------------------------- benchmarks/overhead.py
def overhead_module():
    path = ROOT / "benchmarks" / "overhead.py"
    spec = importlib.util.spec_from_file_location("overhead_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["overhead_benchmark"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_overhead_ratio_is_a_geometric_mean_with_a_t_interval():
    overhead = overhead_module()
    # Ratios 1.0, 1.1, 1.21: logs 0, L, 2L with L = ln 1.1; mean L (x1.1), sample std L,
    # half-width t(0.975, 2) * L / sqrt(3) with t = 4.302653.
    ratio, low, high = overhead.ratio_interval([1.0, 1.1, 1.21])
    half = 4.302653 * math.log(1.1) / math.sqrt(3)
    assert ratio == pytest.approx(1.1)
    assert (low, high) == pytest.approx((1.1 * math.exp(-half), 1.1 * math.exp(half)), rel=1e-6)
    ratio, low, high = overhead.ratio_interval([1.02])
    assert ratio == pytest.approx(1.02) and math.isnan(low) and math.isnan(high)


def test_overhead_flags_a_pair_when_either_side_cannot_be_trusted():
    overhead = overhead_module()

    def side(epochs, contended=False):
        return overhead.Side(epochs, 0.3 if contended else 0.0, 0.0, contended)

    quiet = side([3.0, 2.5, 2.5, 2.55])
    assert quiet.flags == [] and quiet.steady == 2.5
    bimodal = side([2.85, 2.68, 5.02, 5.00, 2.62])  # issue 12's TensorFlow record
    pair = overhead.Pair(quiet, bimodal, "AB")
    assert pair.flags == ["harness unstable"] and pair.ratio == pytest.approx(3.84 / 2.5)
    busy = side([3.0, 2.0, 2.0], contended=True)
    assert overhead.Pair(busy, quiet, "BA").flags == ["bare contended"]


def test_overhead_in_one_process_pairs_neighbouring_epochs():
    """In one process the ratio is the median of each round's harness / bare epoch, so a slow
    spell that hits both sides cancels, and only contention drops the pair."""
    overhead = overhead_module()

    def side(epochs, contended=False):
        return overhead.Side(epochs, 0.3 if contended else 0.0, 0.0, contended)

    # warm-up, then rounds; rounds 3-4 a slow spell on both sides (each side's CV is 15%+)
    bare = side([9.0, 1.00, 1.00, 1.50, 1.50, 1.00])
    harness = side([9.0, 1.02, 1.01, 1.53, 1.52, 1.02])
    assert "unstable" in bare.flags and "unstable" in harness.flags
    pair = overhead.Pair(bare, harness, "in-process")
    assert pair.flags == [] and pair.ratio == pytest.approx(1.02)
    # across processes the same epochs are a dropped pair, ratio of the medians
    assert overhead.Pair(bare, harness, "AB").flags == ["bare unstable", "harness unstable"]
    busy = overhead.Pair(side(bare.epoch_seconds, contended=True), harness, "in-process")
    assert busy.flags == ["bare contended"]


@pytest.mark.slow
@pytest.mark.skipif("jax" not in INSTALLED, reason="jax not installed")
def test_overhead_benchmark_runs_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick", "--backend", "jax",
         "--keep-flagged", "--json", str(tmp_path / "pairs.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "jax" in out.stdout.splitlines()[-1] and "2 of 2" in out.stdout
    pairs = json.loads((tmp_path / "pairs.json").read_text())["jax"]
    assert [p["order"] for p in pairs] == ["AB", "BA"]
    assert all(len(p["bare"]["epoch_seconds"]) == 3 for p in pairs)


@pytest.mark.slow
@pytest.mark.skipif("jax" not in INSTALLED, reason="jax not installed")
def test_overhead_in_process_times_both_sides_in_each_process(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick", "--in-process",
         "--backend", "jax", "--keep-flagged", "--json", str(tmp_path / "pairs.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "one-epoch fits alternating" in out.stdout and "2 of 2" in out.stdout
    pairs = json.loads((tmp_path / "pairs.json").read_text())["jax"]
    assert [p["order"] for p in pairs] == ["in-process", "in-process"]
    for p in pairs:
        bare, harness = p["bare"], p["harness"]
        # --quick: 3 timed epochs a side after one warm-up each, all in one process
        assert len(bare["epoch_seconds"]) == len(harness["epoch_seconds"]) == 4
        assert bare["other_share"] == harness["other_share"]  # one probe around the process
        rounds = zip(harness["epoch_seconds"][1:], bare["epoch_seconds"][1:], strict=True)
        assert p["ratio"] == pytest.approx(statistics.median(b / a for b, a in rounds))
