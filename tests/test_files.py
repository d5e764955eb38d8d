"""Bounded reads (`runfile.files`) and the datasets read through them: a device, a FIFO or an
oversize file is one line on stderr and exit 2, never a hang or a read until memory runs out.

Every command that might read a device or a FIFO runs in a subprocess with a timeout and an
address-space limit, so a regression fails the test instead of hanging it or exhausting memory.
"""

from __future__ import annotations

import gzip
import os
import resource
import stat
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, write_idx
from mnist_bench import data
from mnist_bench.core.errors import UserError
from mnist_bench.execute import peak
from mnist_bench.runfile import files

MEMORY_CAP = 4 * 2**30  # bytes of address space for a CLI under test


def cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None):
    """`mnist-bench ARGS` in a fresh process that can neither hang the test nor eat the host."""
    return subprocess.run(
        [sys.executable, "-m", "mnist_bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        preexec_fn=cap_memory,
    )


def assert_one_line_exit_2(out: subprocess.CompletedProcess, *fragments: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (all holes)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# -------------------------------------------------------------------------------- the helper
@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (2**20, "1 MiB"),
        (256 * 2**20, "256 MiB"),
        (256 * 2**20 + 1, "256 MiB"),
        (int(1.5 * 2**20), "1.5 MiB"),
        (3 * 2**30, "3072 MiB"),
    ],
)
def test_size_text(size, text):
    assert files.size_text(size) == text


def test_read_bytes_reads_a_regular_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"x" * 100)
    assert files.read_bytes(path, limit=100, what="run file") == b"x" * 100


@pytest.mark.parametrize(
    "target, kind",
    [("/dev/zero", "a character device"), ("/dev/null", "a character device"), (".", "a folder")],
)
def test_not_a_regular_file(tmp_path, target, kind):
    path = tmp_path if target == "." else Path(target)
    with pytest.raises(UserError) as err:
        files.read_bytes(path, limit=2**20, what="run file")
    assert str(err.value) == f"{path}: not a regular file ({kind}; expected a run file)"


def test_a_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "run.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(UserError, match="run.json: not a regular file"):
        files.check_regular(link, limit=2**20, what="run file")


def test_oversize_file_is_refused_from_its_size_without_reading_it(tmp_path):
    path = sparse(tmp_path / "huge.json", files.RUN_FILE_LIMIT + 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as err:
            files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == f"{path}: too large for a run file (257 MiB; limit 256 MiB)"
    assert peak < 2**20


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="no /proc (not Linux)")
def test_the_read_stops_at_the_limit_whatever_the_size_said():
    # /proc files report a size of 0 and hold more: as a file that grew after its stat would.
    path = Path("/proc/self/status")
    assert path.stat().st_size == 0
    with pytest.raises(UserError, match=r"status: too large for a run file \(over 16 bytes"):
        files.read_bytes(path, limit=16, what="run file")


# ------------------------------------------------------------------------------- data files
def test_idx_decompressing_past_the_limit_is_refused(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28), np.uint8))  # 2,352 bytes of data
    monkeypatch.setattr(files, "DATASET_ARRAY_LIMIT", 1000)
    with pytest.raises(UserError) as err:
        data.read_idx(path)
    assert str(err.value) == f"{path} holds more than 1000 bytes of data (the limit for one array)"


def test_idx_bomb_is_refused_in_bounded_memory(tmp_path, monkeypatch):
    """64 MiB of zeros compress to 64 KiB: the read stops at the limit, not at the end."""
    monkeypatch.setattr(files, "DATASET_ARRAY_LIMIT", 2**20)
    path = tmp_path / "bomb.gz"
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (85_600, 28, 28))
    with gzip.open(path, "wb") as f:
        f.write(header)
        for _ in range(64):
            f.write(bytes(2**20))
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="holds more than 1 MiB of data"):
            data.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_npz_member_decompressing_past_the_limit_is_refused(tmp_path, monkeypatch):
    small = data.load("mnist").limit(20, 10)
    path = tmp_path / "big.npz"
    np.savez_compressed(path, **{k: getattr(small, k) for k in data.KEYS})
    monkeypatch.setattr(files, "DATASET_ARRAY_LIMIT", 10_000)  # x_train holds 15,680 bytes
    with pytest.raises(UserError) as err:
        data.load(path)
    assert str(err.value) == (
        f"{path}: x_train.npy holds more than 9.8 KiB of data (the limit for one array)"
    )


def test_data_under_the_limit_still_loads(idx_folder):
    assert data.load(idx_folder).x_train.shape == (300, 28, 28)
    assert data.load("mnist").x_train.shape == (60000, 28, 28)


def test_oversize_dataset_file_is_refused(tmp_path):
    path = sparse(tmp_path / "huge.npz", files.DATASET_FILE_LIMIT + 1)
    with pytest.raises(UserError, match="huge.npz: too large for a dataset file"):
        data.load(path)


def test_oversize_idx_file_is_refused(tmp_path, idx_folder):
    target = idx_folder / data.IDX_FILES["y_test"]
    target.unlink()
    sparse(target, files.DATASET_FILE_LIMIT + 1)
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz: too large for a dataset"):
        data.load(idx_folder)


# ------------------------------------------------------------------ the CLI: devices and FIFOs
def test_data_dev_zero_is_one_line(tmp_path):
    out = cli("run", "--data", "/dev/zero", "--results-dir", str(tmp_path))
    assert_one_line_exit_2(out, "mnist-bench run: error: /dev/zero: not a regular file")
    assert list(tmp_path.iterdir()) == []


def test_data_fifo_is_one_line(tmp_path):
    path = fifo(tmp_path / "data.npz")
    out = cli("run", "--data", str(path), "--results-dir", str(tmp_path / "runs"))
    assert_one_line_exit_2(out, f"{path}: not a regular file (a FIFO; expected a dataset file)")


def test_data_oversize_is_one_line(tmp_path):
    path = sparse(tmp_path / "huge.npz", files.DATASET_FILE_LIMIT + 2**20)
    out = cli("run", "--data", str(path), "--results-dir", str(tmp_path / "runs"))
    assert_one_line_exit_2(out, f"{path}: too large for a dataset file (513 MiB; limit 512 MiB)")


def test_idx_folder_holding_a_fifo_and_a_device_is_one_line(tmp_path, idx_folder):
    (idx_folder / data.IDX_FILES["x_train"]).unlink()
    (idx_folder / data.IDX_FILES["x_train"]).symlink_to("/dev/zero")
    out = cli("run", "--data", str(idx_folder), "--results-dir", str(tmp_path / "runs"))
    assert_one_line_exit_2(out, "train-images-idx3-ubyte.gz: not a regular file")
    (idx_folder / data.IDX_FILES["x_train"]).unlink()
    fifo(idx_folder / data.IDX_FILES["x_train"])
    out = cli("run", "--data", str(idx_folder), "--results-dir", str(tmp_path / "runs"))
    assert_one_line_exit_2(out, "train-images-idx3-ubyte.gz: not a regular file (a FIFO")


def test_npz_that_is_not_a_zip_is_still_one_line(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"junk" * 100)
    with pytest.raises(UserError, match="junk.npz: not a readable .npz file"):
        data.load(path)
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(UserError, match="junk.npz: missing key"):
        data.load(path)


# ------------------------------------------------------------------------- the peak's cache
def _peak(cache_home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from mnist_bench.execute import peak; print(peak.peak_gflops())"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "XDG_CACHE_HOME": str(cache_home)},
        preexec_fn=cap_memory,
    )


def test_peak_reads_its_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_BENCH_CACHE_DIR", raising=False)  # the tests' own: XDG's here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = peak.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"gflops": 123.5}')
    out = _peak(tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "123.5"


@pytest.mark.parametrize("what", ["fifo", "device"])
def test_peak_measures_anew_past_a_fifo_or_device_and_leaves_it_be(tmp_path, monkeypatch, what):
    monkeypatch.delenv("MNIST_BENCH_CACHE_DIR", raising=False)  # the tests' own: XDG's here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = peak.cache_path()
    path.parent.mkdir(parents=True)
    if what == "fifo":
        fifo(path)
    else:
        path.symlink_to("/dev/zero")
    out = _peak(tmp_path)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) > 0
    assert stat.S_ISFIFO(path.stat().st_mode) if what == "fifo" else path.is_symlink()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
