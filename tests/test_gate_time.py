"""benchmarks/gate_time.py: its ratios and its one-line errors (the script itself trains)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, benchmark

gate_time = benchmark("gate_time")


def test_ratios_over_every_pairing_and_median_to_median():
    r = gate_time.ratios([70.0, 75.0, 80.0], [200.0, 250.0])
    assert r["min"] == pytest.approx(70 / 250) and r["max"] == pytest.approx(80 / 200)
    assert r["median_to_median"] == pytest.approx(75 / 225)


def test_bad_options_are_one_line():
    script = str(ROOT / "benchmarks" / "gate_time.py")
    for bad in (["--rounds", "0"], ["--gate", "suites/none.toml"], ["--rounds", "x"]):
        done = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
        assert done.stderr.strip().splitlines()[-1].startswith("gate_time.py: error: ")
