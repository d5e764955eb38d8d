"""Where Linux's calls are missing (macOS has no `os.sched_getaffinity` and no /proc), the
environment falls back: usable cores = all cores, the CPU model from `platform`. Each Linux call
is hidden here, in-process and in a fresh CLI process, and the commands still work."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from conftest import ROOT
from mnist_bench.core import environment

INSTALLED = environment.installed_backends()
BACKEND = "jax" if "jax" in INSTALLED else (INSTALLED[0] if INSTALLED else None)

# Run the CLI as it runs where Linux's calls are missing: with them hidden before bench starts.
AS_ON_MACOS = """
import os, sys
from pathlib import Path
del os.sched_getaffinity
from mnist_bench.core import environment
environment.CPUINFO = Path(sys.argv[1])
from mnist_bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def fresh_cpu_info():
    """`cpu_info` is cached for the process: clear it around a test that changes what it sees."""
    environment.cpu_info.cache_clear()
    yield
    environment.cpu_info.cache_clear()


def as_on_macos(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", AS_ON_MACOS, str(tmp_path / "no-proc" / "cpuinfo"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_usable_cores_without_sched_getaffinity(monkeypatch, fresh_cpu_info):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert environment.usable_cores() == os.cpu_count()
    assert environment.cpu_info()["usable_cores"] == os.cpu_count()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no affinity on this OS")
def test_usable_cores_follows_the_affinity_mask_where_there_is_one():
    assert environment.usable_cores() == len(os.sched_getaffinity(0))


def test_cpu_model_without_proc(tmp_path, monkeypatch, fresh_cpu_info):
    monkeypatch.setattr(environment, "CPUINFO", tmp_path / "no-proc" / "cpuinfo")
    cpu = environment.cpu_info()
    assert cpu["model"] == (platform.processor() or platform.machine())
    assert cpu["flags"] == []
    assert cpu["logical_cores"] == os.cpu_count()


def test_environment_block_without_linux_calls(tmp_path, monkeypatch, fresh_cpu_info):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(environment, "CPUINFO", tmp_path / "no-proc" / "cpuinfo")
    env = environment.collect({}, ["mnist-bench", "env"])
    assert env["cpu"]["usable_cores"] == os.cpu_count()
    assert len(env["machine_id"]) == 12
    json.dumps(env, allow_nan=False)  # still a plain JSON block


@pytest.mark.parametrize("args", [("env", "--json"), ("env",), ("list", "--no-probe")])
def test_cli_without_linux_calls(tmp_path, args):
    out = as_on_macos(tmp_path, *args)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    if "--json" in args:
        cpu = json.loads(out.stdout)["cpu"]
        assert cpu["usable_cores"] == os.cpu_count()
        assert cpu["model"] == (platform.processor() or platform.machine())


@pytest.mark.skipif(BACKEND is None, reason="no backend installed")
def test_run_without_linux_calls(tmp_path):
    out = as_on_macos(
        tmp_path,
        "run",
        "-b",
        BACKEND,
        "-v",
        "single-dense",
        "--train-limit",
        "256",
        "--test-limit",
        "128",
        "--epochs",
        "1",
        "--infer-batch-sizes",
        "8",
        "--results-dir",
        str(tmp_path / "runs"),
    )
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "runs").glob("*.json")
    run = json.loads(path.read_text())
    assert run["environment"]["cpu"]["usable_cores"] == os.cpu_count()
    assert [r["status"] for r in run["records"]] == ["ok"]
