"""benchmarks/machine_drift.py: fixed units of work timed again and again, as the methodology
page's "How steady the machine itself is" runs it (for a few seconds here)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "machine_drift.py"


def test_it_times_each_kind_of_work_and_keeps_every_unit(tmp_path):
    out = tmp_path / "drift.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--minutes", "0.05", "--unit", "0.05", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    saved = json.loads(out.read_text())
    assert saved["summary"] == summary
    for kind in ("matmul", "python"):
        figures = summary[kind]
        units = [u for u in saved["units"] if u["kind"] == kind]
        assert figures["units"] == len(units) >= 2
        walls = [u["wall"] for u in units]
        assert figures["wall"]["min"] == round(min(walls), 5)
        assert figures["wall"]["max"] == round(max(walls), 5)
        assert figures["wall"]["max_over_min"] >= 1 and figures["wall"]["cv"] >= 0
        assert all(u["cpu"] > 0 and u["others"] >= 0 and u["steal"] >= 0 for u in units)
    assert "load before" in result.stderr and "load after" in result.stderr


def test_a_bad_duration_is_one_line_and_exit_2():
    for args in (["--minutes", "0"], ["--unit", "100"], ["--minutes", "x"]):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("machine_drift.py: error:")
