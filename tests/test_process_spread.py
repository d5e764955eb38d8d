"""benchmarks/process_spread.py: its summary of processes' speeds and its one-line errors (the
script itself trains, in fresh processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, benchmark

ps = benchmark("process_spread")


def run(rate: float, unstable: bool = False) -> dict:
    return {"train_samples_per_second": rate, "unstable": unstable, "contended": False}


def test_summary_is_the_spread_across_processes():
    s = ps.summary([run(20000), run(30000), run(25000, unstable=True)])
    assert s["runs"] == 3 and s["median"] == 25000
    assert s["max_min"] == pytest.approx(1.5)
    assert s["cv"] == pytest.approx(5000 / 25000)
    assert s["unstable"] == 1 and s["contended"] == 0


def test_every_condition_names_its_flags_environment_and_prefix():
    assert {"default", "own", "intra1", "intra1-inter1", "no-aslr"} <= set(ps.CONDITIONS)
    assert ps.CONDITIONS["default"] == ([], {}, [])
    assert ps.CONDITIONS["own"][1] == {"MNIST_BENCH_FRAMEWORK_THREADS": "1"}
    assert ps.CONDITIONS["intra1-inter1"][:2] == (
        ["--threads", "1"],
        {"TF_NUM_INTEROP_THREADS": "1"},
    )
    for extra, env, prefix in ps.CONDITIONS.values():
        assert all(isinstance(x, str) for x in [*extra, *env, *env.values(), *prefix])


def test_the_no_aslr_prefix_turns_address_randomization_off_for_the_children():
    """setarch's personality is inherited by what it starts: the worker's too."""
    prefix = ps.CONDITIONS["no-aslr"][2]
    code = "print(open('/proc/self/personality').read().strip())"
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout, 16) & 0x0040000  # ADDR_NO_RANDOMIZE


def test_bad_options_are_one_line():
    script = str(ROOT / "benchmarks" / "process_spread.py")
    for bad in (["--conditions", "bogus"], ["--runs", "1"], ["--backend", "x"]):
        done = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
