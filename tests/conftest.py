"""Shared fixtures: small real data, the installed backends, a CLI runner."""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mnist_bench import data
from mnist_bench.core import config, environment
from mnist_bench.core.identity import Job
from mnist_bench.runfile import storage
from mnist_bench.runfile.records import Record, load_run

ROOT = Path(__file__).resolve().parent.parent


def benchmark(name: str):
    """The script benchmarks/NAME.py as a module (a fresh one each call; not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INSTALLED = environment.installed_backends()
# The backend for tests that need one, any one: JAX (the quickest to start) where installed.
BACKEND = "jax" if "jax" in INSTALLED else (INSTALLED[0] if INSTALLED else "jax")
needs_backend = pytest.mark.skipif(not INSTALLED, reason="no backend installed")
# Every worker a test starts measures inference in a few calls (training.QUICK_ENV): a tiny
# record's time goes to training, not to the inference sweep and latency loop.
os.environ.setdefault("MNIST_BENCH_QUICK_MEASURE", "1")
# For tests of what happens around training (signals, timeouts, dead workers, resume, shards):
# the environment that starts tests/fake_worker.py instead of the worker (launcher.WORKER_ENV).
FAKE_WORKER = {"MNIST_BENCH_WORKER": str(ROOT / "tests" / "fake_worker.py")}


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): one test process more than the cores this process may
    use. A third of the tests' time is spent waiting on the processes they start (a worker, a
    server, a browser), and a spare test process fills it: the default run took 4 min 50 s with
    3 processes on 2 cores against 6 min 4 s with 2 (`PYTEST_XDIST_AUTO_NUM_WORKERS` overrides)."""
    asked = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if asked.isdigit() and int(asked) > 0:
        return int(asked)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores + 1


@pytest.fixture(autouse=True)
def _default_signal_handling():
    """Every test starts with Python's own Ctrl-C and SIGTERM handling in this process, and so
    in the processes it starts (an ignored or blocked signal is inherited through exec). A
    library that an earlier test ran in this process can leave SIGINT ignored (mnist-bench
    itself never ignores it), and the interrupt tests then start children that Ctrl-C cannot
    reach: seen intermittently under pytest-xdist."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    yield


def make_record(
    variant: str = "two-dense",
    backend: str = "jax",
    device: str | None = "cpu",
    seed: int = 0,
    *,
    requested: str = "auto",
    repeat: int = 0,
    dataset: str = "mnist",
    digest: str = "",
    **fields,
) -> Record:
    """A record built from its job, as the runner builds them; `fields` are settings (epochs,
    learning_rate...) or record fields (test_accuracy, status...)."""
    names = set(config.SETTINGS_FIELDS)
    settings = config.TrainSettings(**{k: v for k, v in fields.items() if k in names})
    job = Job(variant, backend, requested, seed, settings, dataset, digest, repeat)
    return Record(job=job, device=device, **{k: v for k, v in fields.items() if k not in names})


def backend_params(slow: tuple[str, ...] = ()):
    """Every backend, skipped with a reason where its framework is not installed; those in
    `slow` marked slow (run by .ci/run after the default tests)."""
    return [
        pytest.param(
            b,
            marks=[
                pytest.mark.skipif(b not in INSTALLED, reason=f"{b} not installed"),
                *([pytest.mark.slow] if b in slow else []),
            ],
        )
        for b in ("tensorflow", "jax", "torch")
    ]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The tests' own cache folder, one for the session (every test process's), never the
    user's: the run index, the backends' descriptions and the machine's peak start empty, as on
    a fresh machine, and a user's index of thousands of runs neither slows every reader nor
    grows by the tests' files. Tests that need a cache of their own still set one."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "cache"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(storage.CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def mnist() -> data.Dataset:
    return data.load("mnist")


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """One tiny real run through the Python API (two-dense on BACKEND, one epoch on 2,000
    samples, tested on 500), shared by the tests that only read a run: its `Results`."""
    import mnist_bench

    folder = tmp_path_factory.mktemp("real-run")
    return mnist_bench.run(
        variants=["two-dense"],
        backends=[BACKEND],
        results_dir=folder,
        epochs=1,
        train_limit=2000,
        test_limit=500,
    )


def write_idx(path: Path, array: np.ndarray, *, dims=None, magic=None) -> Path:
    """Write `array` as a gzip IDX file; `dims` / `magic` let a test make the header lie."""
    dims = array.shape if dims is None else dims
    header = bytes([0, 0, 0x08, len(dims)]) if magic is None else magic
    header += b"".join(int(d).to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return path


@pytest.fixture
def idx_folder(tmp_path: Path, mnist: data.Dataset) -> Path:
    """A small IDX dataset folder (first 300 / 100 MNIST samples)."""
    folder = tmp_path / "idx"
    folder.mkdir()
    small = mnist.limit(300, 100)
    for key, name in data.IDX_FILES.items():
        write_idx(folder / name, getattr(small, key))
    return folder


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """`mnist-bench ARGS` in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mnist_bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


FRAMEWORKS = ("keras", "tensorflow", "jax", "torch")


def cli_importing_none_of(
    banned: tuple[str, ...], *args: str, exit_code: int = 0
) -> subprocess.CompletedProcess:
    """`mnist-bench ARGS` through `mnist_bench.cli.main` in a fresh interpreter, which must end
    with `exit_code` and without having imported any of the `banned` modules (the frameworks,
    matplotlib, Ray...): what keeps a command's start fast. Returns the finished process."""
    script = (
        "import sys, mnist_bench.cli\n"
        "try:\n"
        f"    code = mnist_bench.cli.main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"loaded = sorted(m for m in {tuple(banned)!r} if m in sys.modules)\n"
        "print(f'\\nfresh process: exit {code}, imported {loaded}', file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    last = out.stderr.rstrip().rpartition("\n")[2]
    assert out.returncode == 0 and last == f"fresh process: exit {exit_code}, imported []", (
        out.stderr[-3000:]
    )
    return out


def undocumented_json_keys(command: str, keys: set[str]) -> list[str]:
    """The `keys` that `mnist-bench COMMAND --help` does not name (its `--format json` keys)."""
    out = run_cli(command, "--help")
    assert out.returncode == 0 and "json" in out.stdout, out.stderr
    text = " ".join(out.stdout.split())
    return sorted(k for k in keys if not re.search(rf"\b{k}\b", text))


def only_run(folder: Path):
    """The one run file a test's run wrote into `folder`, loaded."""
    files = sorted(folder.glob("*.json"))
    assert len(files) == 1, files
    return load_run(files[0])
