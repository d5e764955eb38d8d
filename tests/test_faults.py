"""Reliability under faults: signals, hangs, killed workers, divergence, storage and hostile files.

The runs are real `mnist-bench run` processes on tiny MNIST subsets; faults come from outside
(signals, a vanished results folder) or from the worker's fault hook (MNIST_BENCH_INJECT_FAULT).
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest
import unwritable
from conftest import BACKEND, ROOT, run_cli, write_idx
from mnist_bench import data
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import storage
from mnist_bench.runfile.records import load_run

TINY = (
    "-b",
    BACKEND,
    "--train-limit",
    "512",
    "--test-limit",
    "256",
    "--epochs",
    "1",
    "--infer-batch-sizes",
    "8",
)
FAULT = "MNIST_BENCH_INJECT_FAULT"


# ------------------------------------------------------------------------------------- helpers
def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`mnist-bench ARGS` started in the background, as a user starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180.0):
    """Poll `condition()` until it is truthy; fail if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {what}: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def run_file(folder: Path) -> Path | None:
    files = sorted(folder.glob("*.json"))
    assert len(files) <= 1, files
    return files[0] if files else None


def saved_records(folder: Path) -> int:
    """How many records the run in `folder` holds, its journal folded in (as `report` reads it)."""
    path = run_file(folder)
    return len(load_run(path).records) if path else 0


def workers(proc: subprocess.Popen) -> list[psutil.Process]:
    """The CLI's worker processes (once the run file exists, its only children)."""
    return psutil.Process(proc.pid).children(recursive=True)


def assert_gone(procs: list[psutil.Process], timeout: float = 10.0) -> None:
    """Every process in `procs` has exited (a zombie nobody reaped counts as exited)."""
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.1)
    assert not alive, f"worker(s) left running: {alive}"


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------------- interrupt and resume
@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGINT,
        pytest.param(
            signal.SIGTERM, marks=pytest.mark.slow
        ),  # the same path; SIGTERM kept cheap below
    ],
)
def test_interrupt_then_resume(tmp_path, sig):
    # single-dense finishes; two-dense then hangs, so the signal lands at a known moment.
    proc = start_cli(
        "run",
        *TINY,
        "-v",
        "single-dense",
        "-v",
        "two-dense",
        "--results-dir",
        str(tmp_path),
        env={FAULT: "hang@two-dense"},
    )
    wait_for(lambda: saved_records(tmp_path) == 1, proc, "the first record was saved")
    path = run_file(tmp_path)
    hung = workers(proc)
    assert hung, "the two-dense worker should be running"
    proc.send_signal(sig)
    if sig == signal.SIGINT:  # Ctrl-C again while figures are drawn: no waiting for them
        wait_for(
            lambda: json.loads(path.read_text())["status"] == "interrupted",
            proc,
            "the run file was marked interrupted",
        )
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    if sig == signal.SIGINT:
        assert time.monotonic() - t0 < 5
        # 130 from the second signal's handler; -2 (a shell shows 130) if it came so late that
        # the interpreter was already shutting down with its default handlers back.
        assert proc.returncode in (130, -signal.SIGINT)
    else:
        assert proc.returncode == 128 + sig
        assert "interrupted: 1 record(s) saved, 1 left" in err and "--resume" in err
    assert_gone(hung)

    run = load_run(path)
    assert run.status == "interrupted" and run.finished_utc
    assert [(r.variant, r.status) for r in run.records] == [("single-dense", "ok")]
    assert [job.variant for job in run.pending] == ["two-dense"]

    out = run_cli("run", "--resume", str(path))  # no fault this time
    assert out.returncode == 0, out.stderr
    assert run_file(tmp_path) == path, "resume writes into the same run file"
    run = load_run(path)
    assert run.status == "complete" and run.pending == []
    keys = [r.key for r in run.records]
    assert len(keys) == len(set(keys)) == 2
    assert sorted((r.variant, r.status) for r in run.records) == [
        ("single-dense", "ok"),
        ("two-dense", "ok"),
    ]
    assert run.aggregates


def test_sigterm_before_any_record_is_saved(tmp_path):
    proc = start_cli(
        "run",
        *TINY,
        "-v",
        "single-dense",
        "--seeds",
        "0,1",
        "--results-dir",
        str(tmp_path),
        env={FAULT: "hang@single-dense"},
    )
    hung = wait_for(lambda: run_file(tmp_path) and workers(proc), proc, "a worker started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert "Traceback" not in err
    assert "interrupted: 0 record(s) saved, 2 left; finish with: mnist-bench run --resume" in err
    assert_gone(hung)
    run = load_run(run_file(tmp_path))
    assert run.status == "interrupted" and run.records == []
    assert [job.seed for job in run.pending] == [0, 1]
    assert all(job.variant == "single-dense" and job.settings.epochs == 1 for job in run.pending)


def test_worker_exits_when_the_parent_is_killed(tmp_path):
    proc = start_cli(
        "run",
        *TINY,
        "-v",
        "single-dense",
        "--results-dir",
        str(tmp_path),
        env={FAULT: "hang@single-dense"},
    )
    hung = wait_for(lambda: workers(proc), proc, "a worker started")
    proc.kill()  # SIGKILL: the parent cleans up nothing
    proc.communicate(timeout=30)
    assert_gone(hung, timeout=15)


# ---------------------------------------------------------------- hangs, kills and divergence
def test_timeout_kill_and_divergence_each_cost_one_record(tmp_path):
    # single-dense diverges at this learning rate; two-dense hangs past the record timeout;
    # flatten-dense is SIGKILLed (as by the OOM killer). Each costs its record, not the run.
    out = run_cli(
        "run",
        *TINY,
        "-v",
        "single-dense",
        "-v",
        "two-dense",
        "-v",
        "flatten-dense",
        "--learning-rate",
        "1e38",
        "--record-timeout",
        "5",
        "--results-dir",
        str(tmp_path),
        env={FAULT: "hang@two-dense,kill@flatten-dense"},
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == "error: 3 record(s) failed or diverged"
    run = load_run(run_file(tmp_path))
    assert run.status == "complete"
    single, two, flatten = run.records
    assert (single.variant, single.status, single.diverged_at_epoch) == (
        "single-dense",
        "diverged",
        1,
    )
    assert single.loss_curve == [None] and "loss became nan" in single.error
    assert (two.variant, two.status) == ("two-dense", "failed")
    assert two.error == "timeout: record exceeded --record-timeout 5 s"
    assert (flatten.variant, flatten.status) == ("flatten-dense", "failed")
    assert flatten.error.startswith("worker killed by SIGKILL")
    for text in (
        "diverged: loss became nan in epoch 1",
        "failed: timeout: record exceeded --record-timeout 5 s",
        "failed: worker killed by SIGKILL",
    ):
        assert text in out.stdout  # the final table


def test_contention_probe_sees_a_busy_neighbour():
    from mnist_bench.execute.training import CONTENTION_THRESHOLD, ContentionProbe

    cores = psutil.cpu_count() or 1
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(0.5)
        with ContentionProbe() as probe:
            time.sleep(1.5)  # this process idles; the neighbours take every core
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert probe.share > CONTENTION_THRESHOLD
    assert probe.loadavg >= 0


# ------------------------------------------------------------------------------------- storage
def test_results_folder_is_created_and_concurrent_runs_do_not_clobber(tmp_path):
    folder = tmp_path / "new" / "runs"
    args = (
        "run",
        *TINY,
        "-v",
        "single-dense",
        "--train-limit",
        "256",
        "--test-limit",
        "128",
        "--results-dir",
        str(folder),
    )
    procs = [start_cli(*args), start_cli(*args)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    files = sorted(folder.glob("*.json"))
    assert len(files) == 2
    runs = [load_run(f) for f in files]
    assert runs[0].run_id != runs[1].run_id
    for run in runs:
        assert run.status == "complete" and [r.status for r in run.records] == ["ok"]
        assert (folder / run.run_id).is_dir()  # figures in a folder of its own


@pytest.mark.parametrize("make", ["under-a-file", "read-only"])
def test_unwritable_results_folder_is_one_line(tmp_path, make):
    args = ("run", *TINY, "-v", "single-dense", "--results-dir")
    if make == "under-a-file":
        (tmp_path / "file.txt").write_text("x")
        folder = tmp_path / "file.txt" / "sub"
        out = run_cli(*args, str(folder))
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        with unwritable.read_only(folder) as preexec:  # as root too: no skip
            out = subprocess.run(
                [sys.executable, "-m", "mnist_bench", *args, str(folder)],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=ROOT,
                preexec_fn=preexec,
            )
        assert list(folder.iterdir()) == []
    assert out.returncode == 2
    assert_one_line_error(out.stderr, "mnist-bench run: error: ", str(folder))
    if make == "read-only":
        assert "results folder is not writable" in out.stderr


def test_save_failing_mid_run_is_one_line_exit_2(tmp_path):
    folder = tmp_path / "runs"
    proc = start_cli(
        "run",
        *TINY,
        "-v",
        "single-dense",
        "--seeds",
        "0,1",
        "--results-dir",
        str(folder),
        env={FAULT: "exit@single-dense"},
    )
    path = wait_for(lambda: run_file(folder), proc, "the run file was created")
    hung = workers(proc)
    path.unlink()
    folder.rmdir()  # someone cleans up results/ while the run goes on
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 2
    assert_one_line_error(err, str(path), "cannot write results (No such file or directory)")
    assert_gone(hung)


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failed_rewrite_keeps_the_previous_version(tmp_path, monkeypatch, failing):
    path = tmp_path / "run.json"
    storage.write_json(path, {"version": 1})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "write":  # the payload is written through a file object over os.fdopen
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            f = real_fdopen(fd, *args, **kwargs)
            return _FailingWrites(f, disk_full)

        monkeypatch.setattr(os, "fdopen", fdopen)
    else:
        monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(UserError, match="disk full") as err:
        storage.write_json(path, {"version": 2, "big": "x" * 100_000})
    assert str(path) in str(err.value)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"], "no partial or temporary file"


class _FailingWrites:
    """A binary file whose writes fail (the disk filled up)."""

    def __init__(self, f, fail) -> None:
        self._f, self._fail = f, fail

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def write(self, data):
        self._f.write(data[:10])  # a partial write, then the disk is full
        self._fail()

    def __getattr__(self, name):
        return getattr(self._f, name)


# -------------------------------------------------------------------------------- hostile files
def _valid_run() -> dict:
    job = {"variant": "a", "backend": "jax", "device": "auto", "seed": 0, "settings": {}}
    return {
        "schema_version": 2,
        "run_id": "r",
        "started_utc": "t",
        "config": {},
        "environment": {},
        "records": [{"job": job, "device": "cpu"}],
    }


def _mutated(**changes) -> str:
    """A valid run file with changes: `records__X` a record's field, `job__X` its job's."""
    run = _valid_run()
    for dotted, value in changes.items():
        target, *rest = dotted.split("__")
        if target == "job":
            run["records"][0]["job"][rest[0]] = value
        elif rest:
            run["records"][0][rest[0]] = value
        else:
            run[target] = value
    return json.dumps(run)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"\xff\xfe{\x00}\x00", "unreadable (not UTF-8 text)"),  # UTF-16, as Windows saves
        (b"\x00garbage", "malformed JSON (invalid character (byte 0))"),
        (b'{"run_id": "\xff"}', "unreadable (not UTF-8 text)"),
        (b"[" * 100_000, "expected object, got array"),
        (b'{"schema_version": ' + b"9" * 5000 + b"}", "schema_version: integer value out of range"),
        (b'{"schema_version": 1, "config": {"a": ' + b"[" * 100_000 + b"}}", "nested too deeply"),
        (_mutated(schema_version=0).encode(), "schema_version 0"),
        (_mutated(schema_version=True).encode(), "no integer schema_version"),
        (_mutated(config=[]).encode(), "config: expected object, got array"),
        (_mutated(status="exploded").encode(), "status 'exploded'"),
        (_mutated(records={}).encode(), "records: expected array, got object"),
        (_mutated(job__seed="0").encode(), "records[0].job.seed: expected int, got str"),
        (_mutated(job__seed=True).encode(), "records[0].job.seed: expected int, got bool"),
        (_mutated(job__backend="theano").encode(), "records[0].job: backend 'theano'"),
        (_mutated(records__device="auto").encode(), "records[0]: device 'auto' is not cpu"),
        (_mutated(records__status="great").encode(), "records[0]: record status 'great'"),
        (_mutated(records__epoch_seconds=[1.0, "2"]).encode(), "epoch_seconds[1]: expected float"),
    ],
)
def test_hostile_run_file_is_a_user_error(tmp_path, content, reason):
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_run(path)
    assert str(err.value).startswith(str(path)) and reason in str(err.value)


def test_a_folder_is_not_a_run_file(tmp_path):
    with pytest.raises(UserError, match="not a regular file"):
        load_run(tmp_path)


def test_resume_of_a_run_file_with_a_hostile_config_is_one_line(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(_mutated(config={"variants": 5, "seeds": "x"}))
    out = run_cli("run", "--resume", str(path))
    assert out.returncode == 2
    assert_one_line_error(out.stderr, str(path), "configuration is not valid")


def test_idx_header_claiming_a_billion_images_fails_fast_in_little_memory(tmp_path):
    path = write_idx(tmp_path / "lie.gz", np.zeros((3, 28, 28), np.uint8), dims=(10**9, 28, 28))
    assert_refused_fast_in_little_memory(
        lambda: data.read_idx(path), "truncated: header claims 784000000000 bytes"
    )


def assert_refused_fast_in_little_memory(read, match: str) -> None:
    """`read()` raises a UserError matching `match` within 5 s, having allocated < 8 MiB."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(UserError, match=match):
            read()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5
    assert peak < 8 * 2**20


def test_idx_with_a_corrupt_deflate_stream_is_a_user_error(tmp_path):
    whole = bytearray(gzip.compress(bytes([0, 0, 8, 1]) + (200).to_bytes(4, "big") + bytes(200)))
    for i in range(12, len(whole) - 8):  # the deflate stream, not the gzip header or trailer
        whole[i] ^= 0x55  # zlib.error ("invalid distance too far back"), not an OSError
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(UserError, match="corrupt.gz: not a readable gzip IDX file"):
        data.read_idx(path)


def _npy(array: np.ndarray, claimed_shape: tuple[int, ...] | None = None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    raw = buf.getvalue()
    if claimed_shape is None:
        return raw
    header_len = int.from_bytes(raw[8:10], "little")
    header = raw[10 : 10 + header_len].decode()
    header = header.replace(repr(array.shape), repr(claimed_shape)).rstrip()
    return raw[:10] + (header.ljust(header_len - 1) + "\n").encode() + raw[10 + header_len :]


def _npz_with(tmp_path: Path, x_train: bytes, compress: int = zipfile.ZIP_STORED) -> Path:
    small = data.load("mnist").limit(20, 10)
    path = tmp_path / "hostile.npz"
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for key in data.KEYS:
            z.writestr(f"{key}.npy", x_train if key == "x_train" else _npy(getattr(small, key)))
    return path


def test_npz_header_claiming_a_billion_images_fails_fast_in_little_memory(tmp_path):
    # np.load would allocate the claimed 784 GB first (MemoryError, or the OOM killer).
    path = _npz_with(tmp_path, _npy(np.zeros((3, 28, 28), np.uint8), (10**9, 28, 28)))
    assert_refused_fast_in_little_memory(
        lambda: data.load(path), "x_train.npy is truncated: its header claims"
    )


def test_npz_with_a_corrupt_compressed_member_is_a_user_error(tmp_path):
    path = _npz_with(
        tmp_path,
        _npy(np.arange(20 * 784, dtype=np.uint8).reshape(20, 28, 28)),
        compress=zipfile.ZIP_DEFLATED,
    )
    whole = bytearray(path.read_bytes())
    start = whole.index(b"x_train.npy") + len("x_train.npy") + 40
    whole[start : start + 40] = bytes(range(40))
    path.write_bytes(bytes(whole))
    with pytest.raises(UserError, match="hostile.npz: not a readable .npz file"):
        data.load(path)


def test_npz_fortran_order_reads_like_np_load(tmp_path):
    small = data.load("mnist").limit(20, 10)
    path = _npz_with(tmp_path, _npy(np.asfortranarray(small.x_train)))
    np.testing.assert_array_equal(data.load(path).x_train, small.x_train)
