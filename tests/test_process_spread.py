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


def test_every_condition_names_its_flags_and_environment():
    assert set(ps.CONDITIONS) == {"default", "intra1", "intra1-inter1"}
    assert ps.CONDITIONS["default"] == ([], {})
    assert ps.CONDITIONS["intra1-inter1"][1] == {"TF_NUM_INTEROP_THREADS": "1"}


def test_bad_options_are_one_line():
    script = str(ROOT / "benchmarks" / "process_spread.py")
    for bad in (["--conditions", "bogus"], ["--runs", "1"], ["--backend", "x"]):
        done = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
