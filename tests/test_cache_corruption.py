"""A corrupt cache is never fatal: the machine's peak (`peak-<machine>.json`) and the backends'
descriptions (`describe-<backend>.json`) are measured or described again, with one warning line;
and no number derived from them reaches a run file unless a reader will take it back."""

from __future__ import annotations

import io
import json
import math
import os

import pytest
from conftest import BACKEND, INSTALLED, make_record, needs_backend, run_cli
from mnist_bench.core.config import RunConfig
from mnist_bench.execute import inventory, peak
from mnist_bench.execute.runner import Run
from mnist_bench.runfile import journal, storage
from mnist_bench.runfile.records import load_run, make_writable
from rich.console import Console

BAD_PEAKS = [
    b'{"gflops": NaN}',
    b'{"gflops": Infinity}',
    b'{"gflops": -5}',
    b'{"gflops": 1e-300}',
    b'{"gflops": 0}',
    b'{"gflops": 1e400}',
    b'{"gflops": 1' + b"0" * 5000 + b"}",  # an integer Python will not parse by default
    b'{"gflops": "50"}',
    b'{"gflops": true}',
    b'{"gflops": null}',
    b"{}",
    b"[50]",
    b"50",
    b"",
    b"not json",
    b"\xff\xfe",
    b"[" * 100_000,
]


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    return tmp_path / "cache"


@pytest.mark.parametrize("content", BAD_PEAKS, ids=lambda c: c[:24].decode(errors="replace"))
def test_a_cached_peak_that_is_no_sane_number_is_refused(cache, content):
    path = peak.cache_path()
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"^{path}: "):
        peak.cached(path)


def test_a_sane_cached_peak_is_read_back(cache):
    path = peak.cache_path()
    for value in (0.1, 55.5, 3000, 1e6):
        path.write_text(json.dumps({"gflops": value, "machine_id": "x"}))
        assert peak.cached(path) == value


def test_a_corrupt_peak_is_measured_again_with_one_warning(cache, capsys):
    path = peak.cache_path()
    path.write_bytes(b'{"gflops": NaN}')
    measured = peak.peak_gflops()  # the real matmul, about 2 s
    assert peak.is_sane(measured)
    err = capsys.readouterr().err
    assert err == (
        f"mnist-bench: warning: {path}: gflops nan is not a peak (0.1..1e+06 GFLOP/s); "
        "measuring the peak again\n"
    )
    assert json.loads(path.read_text())["gflops"] == measured  # the cache is whole again
    assert peak.peak_gflops() == measured and capsys.readouterr().err == ""


def test_a_peak_cache_that_is_no_file_is_measured_without_being_replaced(cache, capsys):
    path = peak.cache_path()
    path.mkdir()
    assert peak.is_sane(peak.peak_gflops())
    err = capsys.readouterr().err
    assert err.startswith(f"mnist-bench: warning: {path}: not a regular file (a folder")
    assert err.endswith("; measuring the peak again\n") and err.count("\n") == 1
    assert path.is_dir() and list(path.iterdir()) == []


# ------------------------------------------------------------------------ into a run file
@needs_backend
@pytest.mark.parametrize(
    "content", [b'{"gflops": NaN}', pytest.param(b'{"gflops": 1e-300}', marks=pytest.mark.slow)]
)
def test_a_run_with_a_corrupt_peak_cache_saves_readable_records(tmp_path, content):
    """NaN crashed the save of the first record (the file left `running`, no record); 1e-300
    made an MFU of 1e+300 or so, which report, compare and check then refused."""
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {storage.CACHE_ENV: str(cache)}
    path = cache / peak.cache_path().name  # the machine id does not depend on the variable
    path.write_bytes(content)
    out = run_cli(
        "run", "-b", BACKEND, "-v", "single-dense", "--epochs", "1", "--train-limit", "600",
        "--test-limit", "300", "--no-figures", "--results-dir", str(tmp_path / "runs"), env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"mnist-bench: warning: {path}: gflops " in out.stderr
    (run_file,) = (tmp_path / "runs").glob("*.json")
    run = load_run(run_file)
    assert run.status == "complete" and [r.status for r in run.records] == ["ok"]
    (record,) = run.records
    if record.device == "cpu":
        assert record.mfu is not None and 0 < record.mfu < 10
    assert peak.is_sane(json.loads(path.read_text())["gflops"])
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({**json.loads(run_file.read_text()), "run_id": "older"}))
    for command in (
        ["report", str(run_file)],
        ["compare", str(baseline), str(run_file)],
        ["check", str(run_file), "--baseline", str(baseline)],
    ):
        read = run_cli(*command)
        assert read.returncode == 0, (command, read.stderr)


def test_invalid_derived_values_are_dropped_before_they_reach_the_file():
    record = make_record(
        test_accuracy=0.9, mfu=math.nan, achieved_gflops=math.inf, train_seconds=-1.0
    )
    dropped, problem = make_writable(record)
    assert dropped == ["train_seconds -1.0", "achieved_gflops inf", "mfu nan"]
    assert problem is None
    assert (record.mfu, record.achieved_gflops, record.train_seconds) == (None, None, None)
    assert record.test_accuracy == 0.9
    clean = make_record(test_accuracy=0.9, mfu=0.5)
    assert make_writable(clean) == ([], None) and clean.mfu == 0.5
    listed = make_record(epoch_seconds=[1.0, math.nan])
    dropped, problem = make_writable(listed)
    assert dropped == [] and "record.epoch_seconds[1]: nan is outside" in problem
    unencodable = make_record(contention={"loadavg_1m": math.inf})
    assert "Out of range float values are not JSON compliant" in make_writable(unencodable)[1]


def test_a_run_saves_a_record_with_a_bad_derived_number(tmp_path, cache, capsys):
    """The save itself: a record whose MFU cannot be a number is written without it, and one
    that cannot be written as measured is written as failed, never a crash that leaves the
    run file `running` with no record."""
    peak.cache_path().write_text(json.dumps({"gflops": 50.0}))
    config = RunConfig(variants=("single-dense",), backends=("jax",), results_dir=str(tmp_path))
    run = Run.start(config)
    run.journal = journal.Journal(run.path, run.file.environment)
    run.peak_gflops = math.nan  # as an unchecked cache once gave it
    run._add(make_record("single-dense", achieved_gflops=5.0, test_accuracy=0.9))
    run._add(make_record("single-dense", seed=1, epoch_seconds=[math.inf]))
    err = capsys.readouterr().err
    assert "single-dense on jax, seed 0: left out mfu nan (not a valid value)" in err
    saved = load_run(run.path)  # the journal folded in, as a killed run is read
    assert saved.status == "running"
    assert [(r.seed, r.status) for r in saved.records] == [(0, "ok"), (1, "failed")]
    assert saved.records[0].mfu is None and saved.records[0].test_accuracy == 0.9
    assert saved.records[1].error.startswith("not saved as measured: record.epoch_seconds[0]")


# -------------------------------------------------------------------- backends' descriptions
def keyed(backend: str, info) -> bytes:
    return json.dumps({"key": inventory.cache_key(backend), "info": info}).encode()


VARIANT = {
    "name": "single-dense",
    "params": 7850,
    "flops_per_infer_sample": 15680,
    "flops_per_train_sample": 47040,
}
BAD_DESCRIPTIONS = {
    "params not a count": keyed(
        "jax", {"devices": ["cpu"], "variants": [{**VARIANT, "params": "x"}]}
    ),
    "negative flops": keyed(
        "jax", {"devices": ["cpu"], "variants": [{**VARIANT, "flops_per_train_sample": -1}]}
    ),
    "a bool for params": keyed(
        "jax", {"devices": ["cpu"], "variants": [{**VARIANT, "params": True}]}
    ),
    "a variant with no name": keyed("jax", {"devices": ["cpu"], "variants": [5]}),
    "devices not names": keyed("jax", {"devices": 5, "variants": []}),
    "info not an object": keyed("jax", [1]),
    "not JSON": b'{"key": {"format": 1}, "info": [tru',
    "no key": b'{"info": {}}',
}


@pytest.mark.parametrize("content", BAD_DESCRIPTIONS.values(), ids=BAD_DESCRIPTIONS)
def test_a_corrupt_description_is_passed_over_with_one_warning(cache, content):
    path = cache / "describe-jax.json"
    path.write_bytes(content)
    warnings: list[str] = []
    assert inventory.read_cached("jax", inventory.cache_key("jax"), warnings.append) is None
    assert len(warnings) == 1 and warnings[0].startswith(f"{path}: "), warnings


def test_a_stale_or_missing_description_is_no_warning(cache):
    warnings: list[str] = []
    key = inventory.cache_key("jax")
    assert inventory.read_cached("jax", key, warnings.append) is None  # missing
    info = {"devices": ["cpu"], "variants": [VARIANT]}
    stale = {"key": {**key, "python": "2"}, "info": info}
    (cache / "describe-jax.json").write_text(json.dumps(stale))
    assert inventory.read_cached("jax", key, warnings.append) is None  # another key
    assert inventory.write_cached("jax", key, info)
    assert inventory.read_cached("jax", key, warnings.append) == info
    assert warnings == []


@pytest.mark.slow  # builds every variant on JAX: up to a minute on a busy machine
@pytest.mark.skipif("jax" not in INSTALLED, reason="jax not installed")
def test_list_describes_a_backend_again_over_a_corrupt_description(cache):
    """A description whose parameter count was a string made `list` end in a traceback."""
    path = cache / "describe-jax.json"
    path.write_bytes(BAD_DESCRIPTIONS["params not a count"])
    before = os.stat(path).st_mtime_ns
    out = io.StringIO()
    found = inventory.describe_backends(["jax"], console=Console(file=out, width=300))
    log = out.getvalue()
    assert log.count("warning") == 1
    assert f"list: warning: {path}: variants[0].params is not a count; describing it again" in log
    assert "list: jax described in " in log
    names = {v["name"]: v for v in found["jax"]["variants"]}
    assert names["single-dense"]["params"] == 7850
    assert os.stat(path).st_mtime_ns != before
    assert inventory.read_cached("jax", inventory.cache_key("jax")) is not None  # whole again
