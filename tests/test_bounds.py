"""Sizes checked before anything is built or read, and a deadline on every network call: a grid
too large, a hostile run file, an option naming a FIFO or a device, a server that trickles, never
answers or never stops, each end in one line and exit 2, within seconds and a small memory.

Each case that could hang or exhaust memory runs in a subprocess with a timeout (exceeding it
fails the test) and an address-space limit (`resource.RLIMIT_AS`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BACKEND, ROOT
from mnist_bench.core.config import MAX_JOBS, ConfigError, RunConfig, check_job_count
from mnist_bench.core.errors import UserError
from mnist_bench.execute.ray_executor import RUNTIME_ENV_DEPTH, runtime_env_option
from mnist_bench.publish import network
from mnist_bench.runfile import files
from test_files import assert_one_line_exit_2, fifo, sparse

RUN_FILE = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"  # 20 KB, 7 records
SMALL_MEMORY = 400 * 2**20  # what the tool needs to read a small run file, with room to spare
MEMORY = 4 * 2**30


def python(
    *args: str,
    memory: int = MEMORY,
    timeout: float = 60,
    env: dict | None = None,
    cwd: Path = ROOT,
):
    """`python ARGS` in a fresh process capped in address space; running past `timeout` fails
    the test (subprocess.TimeoutExpired)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        preexec_fn=cap,
    )


def cli(*args: str, **kwargs):
    return python("-m", "mnist_bench", *args, **kwargs)


# ------------------------------------------------------------------------- reads by file size
def test_a_small_run_file_reads_in_a_small_address_space():
    out = cli("report", str(RUN_FILE), memory=SMALL_MEMORY)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "MemoryError" not in out.stderr


@pytest.mark.parametrize("size", [0, 1, 8 * 1024, 3 * 2**20])
def test_read_bytes_takes_memory_in_proportion_to_the_file(tmp_path, size):
    path = tmp_path / "run.json"
    path.write_bytes(b"x" * size)
    tracemalloc.start()
    try:
        data = files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == b"x" * size
    assert peak < 2 * size + 2**20  # never the limit's 256 MiB


def test_read_bytes_at_the_limit_and_over_it(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(b"#" * 1000)
    assert len(files.read_bytes(path, limit=1000, what="suite")) == 1000
    path.write_bytes(b"#" * 1001)
    with pytest.raises(UserError, match=r"too large for a suite \(1001 bytes; limit 1000 bytes\)"):
        files.read_bytes(path, limit=1000, what="suite")


# ------------------------------------------------------------------------------- jobs per run
def test_job_count_is_the_product_of_the_lists():
    check_job_count({"variants": 1, "seeds": MAX_JOBS})  # at the cap: fine
    check_job_count({"variants": 4, "backends": 2, "seeds": 1250})  # 10,000
    with pytest.raises(ConfigError) as err:
        check_job_count({"variants": 3, "backends": 1, "seeds": 3334})
    assert str(err.value) == (
        "the grid makes 10,002 jobs (3 variants x 3,334 seeds); a run plans at most 10,000: "
        "split it into several runs"
    )


def test_run_config_counts_before_it_validates_the_grid():
    RunConfig(seeds=tuple(range(MAX_JOBS)))
    with pytest.raises(ConfigError, match="10,001 jobs"):
        RunConfig(seeds=tuple(range(MAX_JOBS + 1)))
    points = tuple({"epochs": 0} for _ in range(MAX_JOBS))  # counted before a point is checked
    with pytest.raises(ConfigError, match=r"30,000 jobs \(10,000 grid points x 3 passes\)"):
        RunConfig(grid=points, check_determinism=True)


def test_the_count_leaves_the_other_checks_as_they_were():
    assert type(RunConfig(learning_rate=1).learning_rate) is float
    with pytest.raises(ConfigError, match="seeds lists 0 twice"):
        RunConfig(seeds=(0, 0))
    with pytest.raises(ConfigError, match="variants must be a non-empty list"):
        RunConfig(variants=5)


def test_the_exact_count_takes_every_variant_and_backend():
    """`all` and the default backends are known only when the jobs are planned: the count there
    is exact, still before a job is built."""
    from mnist_bench.execute.runner import expand_jobs

    config = RunConfig(variants=("all",), backends=(BACKEND,), seeds=tuple(range(2000)))
    with pytest.raises(UserError, match=r"14,000 jobs \(7 variants x 2,000 seeds\)"):
        expand_jobs(config)
    assert len(expand_jobs(RunConfig(variants=("all",), backends=(BACKEND,)))) == 7


def _exploding_suite(path: Path) -> Path:
    """118 KB of TOML whose grid has 10,000 x 10,000 points."""
    epochs = ",".join(str(i) for i in range(1, 10_001))
    rates = ",".join(f"{i}e-6" for i in range(1, 10_001))
    path.write_text(
        f'variants = ["two-dense"]\nbackends = ["{BACKEND}"]\n\n'
        f"[grid]\nepochs = [{epochs}]\nlearning_rate = [{rates}]\n"
    )
    assert 100_000 < path.stat().st_size < files.SUITE_LIMIT
    return path


@pytest.mark.parametrize("command", ["list", "run"])
def test_a_suite_whose_grid_explodes_is_one_line(tmp_path, command):
    suite = _exploding_suite(tmp_path / "huge.toml")
    extra = ["--no-probe"] if command == "list" else ["--results-dir", str(tmp_path / "runs")]
    out = cli(command, "--suite", str(suite), *extra, timeout=30)
    assert_one_line_exit_2(
        out,
        f"mnist-bench {command}: error: {suite}: the grid makes 100,000,000 jobs "
        "(10,000 epochs x 10,000 learning_rate); a run plans at most 10,000",
    )
    assert not (tmp_path / "runs").exists()


def test_a_suite_within_the_cap_is_listed(tmp_path):
    suite = tmp_path / "fine.toml"
    suite.write_text(
        f'variants = ["two-dense"]\nbackends = ["{BACKEND}"]\nseeds = [0, 1]\n\n'
        "[grid]\nepochs = [1, 2, 3]\nlearning_rate = [1e-3, 3e-3]\n"
    )
    out = cli("list", "--suite", str(suite), "--no-probe", timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"{suite}: 12 records" in out.stdout, out.stdout


@pytest.mark.parametrize("repeats", ["100000000", str(10**23)])
def test_huge_repeats_is_one_line(tmp_path, repeats):
    out = cli("run", "--repeats", repeats, "-b", BACKEND, "--results-dir", str(tmp_path))
    assert_one_line_exit_2(
        out, f"mnist-bench run: error: --repeats {int(repeats):,}: a run plans at most 10,000 jobs"
    )


@pytest.mark.parametrize(
    "call, message",
    [
        ("run(repeats=10**8)", "repeats 100,000,000: a run plans at most 10,000 jobs"),
        ("run(repeats=10**23)", "a run plans at most 10,000 jobs"),
        ("run(seeds=range(10**9))", "seeds: 1,000,000,000 values; a run plans at most 10,000"),
        ("run(seeds=itertools.count())", "seeds: over 10,000 values; a run plans at most 10,000"),
        ("run(seeds=range(3000), variants='all')", "the grid makes"),
    ],
)
def test_the_api_counts_before_it_lists(tmp_path, call, message):
    code = (
        "import itertools, mnist_bench\n"
        f"try:\n    mnist_bench.{call[:-1]}, results_dir={str(tmp_path)!r}, progress=False)\n"
        "except mnist_bench.Error as exc:\n    print(exc)\n"
    )
    out = python("-c", code, timeout=30)
    assert out.returncode == 0, out.stderr
    assert message in out.stdout, out.stdout
    assert not list(tmp_path.iterdir())


def test_resume_of_a_run_file_planning_ten_million_jobs_is_one_line(tmp_path):
    run = json.loads(RUN_FILE.read_text())
    run["status"] = "interrupted"
    run["config"]["seeds"] = list(range(1000))
    run["config"]["grid"] = [{"batch_size": size} for size in range(1, 10_001)]
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(run))
    before = path.read_bytes()
    out = cli("run", "--resume", str(path), timeout=30)
    assert_one_line_exit_2(
        out,
        f"mnist-bench run: error: {path}: its configuration is not valid: the grid makes "
        "30,000,000 jobs (3 variants x 1,000 seeds x 10,000 grid points)",
    )
    assert path.read_bytes() == before


# ------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--variant", "v" * 256, "variants must each be at most 255 characters (got 256)"),
        ("--data", "d" * 4097, "data must be at most 4096 characters (got 4,097)"),
        ("--results-dir", "r" * 4097, "results_dir must be at most 4096 characters (got 4,097)"),
    ],
)
def test_names_from_the_user_are_capped(option, value, message):
    out = cli("run", "-b", BACKEND, option, value)
    assert_one_line_exit_2(out, f"mnist-bench run: error: {message}")


def test_a_name_at_the_cap_is_checked_as_usual():
    out = cli("run", "-b", BACKEND, "--variant", "v" * 255)
    assert_one_line_exit_2(out, "unknown variant 'vvvv")


def test_a_run_file_with_a_huge_name_is_refused(tmp_path):
    run = json.loads(RUN_FILE.read_text())
    run["records"][0]["variant"] = "v" * 2_000_000
    path = tmp_path / "long.json"
    path.write_text(json.dumps(run))
    out = cli("report", str(path), timeout=30)
    assert_one_line_exit_2(out, f"{path}: not a mnist-bench run file", "over 255 characters")


def test_data_under_an_unknown_users_home_is_one_line(tmp_path):
    out = cli("run", "-b", BACKEND, "--data", "~nosuchuser/x.npz", "--results-dir", str(tmp_path))
    assert_one_line_exit_2(out, "mnist-bench run: error: ~nosuchuser/x.npz: no such user's home")


# ------------------------------------------------------------------------------ --runtime-env
def ray_run(runtime_env: str):
    """`run --executor ray` at an address nobody serves: the option is read first."""
    return cli(
        "run", "--executor", "ray", "--address", "127.0.0.1:1", "--runtime-env", runtime_env,
        timeout=30,
    )  # fmt: skip


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "oversize", "folder"])
def test_runtime_env_from_anything_but_a_small_regular_file_is_one_line(tmp_path, target):
    kinds = {
        "/dev/zero": "not a regular file (a character device; expected a runtime env)",
        "fifo": "not a regular file (a FIFO; expected a runtime env)",
        "oversize": "too large for a runtime env (2 MiB; limit 1 MiB)",
        "folder": "not a regular file (a folder; expected a runtime env)",
    }
    path = {
        "/dev/zero": Path("/dev/zero"),
        "fifo": fifo(tmp_path / "env.json") if target == "fifo" else None,
        "oversize": sparse(tmp_path / "big.json", 2 * 2**20) if target == "oversize" else None,
        "folder": tmp_path,
    }[target]
    out = ray_run(str(path))
    assert_one_line_exit_2(out, f"mnist-bench run: error: --runtime-env {path}: {kinds[target]}")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe\x00binary", "--runtime-env: not JSON (not UTF-8 text)"),
        (b"[" * 100_000 + b"]" * 100_000, "--runtime-env: nested more than 16 levels deep"),
        (b'{"a": ' + b"[" * 17 + b"]" * 17 + b"}", "--runtime-env: nested more than 16 levels"),
        (b'{"pip": ["x"', "--runtime-env: not JSON"),
        (b"[]", "--runtime-env must be a JSON object"),
    ],
    ids=["binary", "deep", "just-too-deep", "truncated", "array"],
)
def test_runtime_env_content_is_checked(tmp_path, content, message):
    path = tmp_path / "env.json"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        runtime_env_option(str(path))
    assert str(err.value).startswith(message), err.value
    if content.startswith(b"{"):  # given inline, the same
        with pytest.raises(UserError, match="--runtime-env"):
            runtime_env_option(content.decode())


def test_runtime_env_at_the_depth_cap_is_read(tmp_path):
    value = {"env_vars": {"A": "1"}, "deep": json.loads("[" * 15 + "]" * 15)}
    path = tmp_path / "env.json"
    path.write_text(json.dumps(value))
    assert runtime_env_option(str(path)) == value
    assert runtime_env_option(json.dumps(value)) == value
    assert RUNTIME_ENV_DEPTH == 16


def test_runtime_env_on_a_fifo_is_refused_through_the_command(tmp_path):
    out = ray_run(str(fifo(tmp_path / "env.json")))
    assert_one_line_exit_2(out, "not a regular file (a FIFO; expected a runtime env)")


# --------------------------------------------------------------------------------- the network
@contextlib.contextmanager
def server(kind: str) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 that misbehaves: `trickle` answers one byte a second, `silent`
    never answers, `endless` streams a reply without end; `ok` answers `{}`. Its port; each
    connection lives at most 60 s, and all are closed when the block ends."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

    def answer(conn: socket.socket) -> None:
        end = time.monotonic() + 60
        with conn, contextlib.suppress(OSError):
            conn.settimeout(1)
            conn.recv(65536)
            if kind == "ok":
                conn.sendall(head + b"Content-Length: 2\r\n\r\n{}")
            elif kind == "trickle":
                for byte in head + b"\r\n" + b" " * 100:
                    if stop.is_set() or time.monotonic() > end:
                        return
                    conn.sendall(bytes([byte]))
                    stop.wait(1)
            elif kind == "silent":
                stop.wait(60)
            elif kind == "endless":
                conn.sendall(head + b"\r\n")
                while not stop.is_set() and time.monotonic() < end:
                    conn.sendall(b" " * 65536)

    def accept() -> None:
        threads = []
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                threads.append(threading.Thread(target=answer, args=(conn,), daemon=True))
                threads[-1].start()
        for thread in threads:
            thread.join(5)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(10)
        listener.close()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("trickle", "no complete answer to GET / within 1 s"),
        ("silent", "no complete answer to GET / within 1 s"),
        ("endless", "the reply to GET / is over 1 MiB, the limit"),
    ],
)
def test_every_request_has_a_deadline_and_a_size_cap(kind, message):
    import requests

    with server(kind) as port:
        started = time.monotonic()
        with pytest.raises(network.NetworkBound) as err, network.bounded(1, max_reply=2**20):
            requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert time.monotonic() - started < 10
    assert str(err.value) == message


def test_a_small_reply_within_the_bounds_is_read():
    import requests

    with server("ok") as port, network.bounded(5, max_reply=2):
        reply = requests.get(f"http://127.0.0.1:{port}/x?y=1", timeout=30)
    assert reply.json() == {}


def test_the_bounds_end_with_the_block():
    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send
    with network.bounded(5):
        assert HTTPAdapter.send is not original
    assert HTTPAdapter.send is original


@pytest.mark.parametrize(
    "kind, message",
    [
        ("trickle", "no complete answer to GET /api/2.0/mlflow/experiments/get-by-name within 2 s"),
        ("silent", "no complete answer to GET /api/2.0/mlflow/experiments/get-by-name within 2 s"),
        ("endless", "the reply to GET /api/2.0/mlflow/experiments/get-by-name is over 64 MiB"),
    ],
)
def test_mlflow_export_to_a_hostile_server_is_one_line(kind, message):
    with server(kind) as port:
        uri = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        out = cli(
            "export", str(RUN_FILE), "--to", "mlflow", "--tracking-uri", uri,
            env={"MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}, timeout=90,
        )  # fmt: skip
        seconds = time.monotonic() - started
    assert_one_line_exit_2(out, f"mnist-bench export: error: MLflow at {uri}: {message}")
    assert seconds < 60  # MLflow's import takes most of it


def test_mlflow_timeout_must_be_seconds(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = cli(
        "export", str(RUN_FILE), "--to", "mlflow", "--tracking-uri", uri,
        env={"MLFLOW_HTTP_REQUEST_TIMEOUT": "soon"},
    )  # fmt: skip
    assert_one_line_exit_2(out, "MLFLOW_HTTP_REQUEST_TIMEOUT must be seconds > 0 (got 'soon')")
    assert not list(tmp_path.iterdir())


def _odd_environment(tmp_path: Path) -> Path:
    """`environment.packages` and `environment.backends.<b>` are free-form: every reader
    accepts a file where they hold another type."""
    run = json.loads(RUN_FILE.read_text())
    run["environment"]["packages"] = "keras 3"
    run["environment"]["backends"]["jax"] = 5
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(run))
    assert cli("report", str(path)).returncode == 0
    return path


def test_mlflow_tags_read_free_form_environment_blocks_of_any_type(tmp_path):
    from mnist_bench.publish import export
    from mnist_bench.runfile.collect import LoadedRun
    from mnist_bench.runfile.records import load_run

    path = _odd_environment(tmp_path)
    loaded = LoadedRun(path, load_run(path))
    tags = export._tags(loaded, loaded.run.records[0], "k")
    assert "mnist_bench.keras" not in tags and "mnist_bench.jax" not in tags
    assert tags["mnist_bench.run_id"] == loaded.run.run_id


@pytest.mark.slow  # MLflow's SQLite store makes its tables: a minute on a busy machine
def test_mlflow_export_reads_free_form_environment_blocks_of_any_type(tmp_path):
    path = _odd_environment(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = cli(  # MLflow keeps artifacts in ./mlruns
        "export", str(path), "--to", "mlflow", "--tracking-uri", uri, timeout=180, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("mlflow: 7 run(s) created, 0 already there"), out.stdout
