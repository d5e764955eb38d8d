"""CI's accuracy gate: `suites/gate.toml` afresh, checked by the pooled rule against the
committed `results/gate-baseline/` (docs/ci.md, "The pooled gate"). The fast tests read the
committed baseline's real records; the slow one is the gate itself (.ci/run runs it)."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

GATE = ROOT / "suites" / "gate.toml"
BASELINE_SUITE = ROOT / "suites" / "gate-baseline.toml"


def committed() -> tuple[Path, dict]:
    [path] = (ROOT / "results" / "gate-baseline").glob("*.json")
    return path, json.loads(path.read_text())


def test_the_committed_gate_baseline_is_the_gate_jobs_on_other_seeds():
    gate, base = (tomllib.loads(p.read_text()) for p in (GATE, BASELINE_SUITE))
    assert {k: v for k, v in gate.items() if k not in ("seeds", "description")} == {
        k: v for k, v in base.items() if k not in ("seeds", "description")
    }
    assert not set(gate["seeds"]) & set(base["seeds"])  # the two sides never share a seed
    _, run = committed()
    assert run["status"] == "complete" and run["config"]["suite"].endswith("gate-baseline.toml")
    records = run["records"]
    assert all(r["status"] == "ok" and not r.get("injected") for r in records)
    assert sorted({r["job"]["seed"] for r in records}) == base["seeds"]
    assert {(r["job"]["variant"], r["job"]["backend"]) for r in records} == {
        (v, b) for v in gate["variants"] for b in gate["backends"]
    }


def halves(tmp_path: Path, drop: float) -> tuple[str, str]:
    """The committed baseline split by seed into two run files (8 seeds each), the second
    half's accuracies lowered by `drop`: real seed-to-seed spreads, a known shift."""
    _, run = committed()
    seeds = sorted({r["job"]["seed"] for r in run["records"]})
    paths = []
    for name, half, shift in (("a", seeds[:8], 0.0), ("b", seeds[8:], drop)):
        part = copy.deepcopy(run)
        part["run_id"] = f"{run['run_id']}-{name}"
        part["records"] = [r for r in part["records"] if r["job"]["seed"] in half]
        for r in part["records"]:
            r["test_accuracy"] -= shift
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(part))
        paths.append(str(path))
    return paths[0], paths[1]


def test_the_pooled_rule_passes_real_seed_halves_and_fails_them_half_a_point_down(tmp_path):
    a, b = halves(tmp_path, 0.0)
    result = run_cli("check", b, "--baseline", a, "--pooled-alpha", "0.001")
    assert result.returncode == 0, result.stdout + result.stderr
    a, b = halves(tmp_path, 0.005)
    result = run_cli("check", b, "--baseline", a, "--pooled-alpha", "0.001")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pooled accuracy" in result.stdout and "one-sided p=" in result.stdout


@pytest.mark.slow
def test_the_gate_suite_passes_the_pooled_gate(tmp_path):
    """CI's accuracy gate (.ci/run runs it with the slow tests): suites/gate.toml afresh (two
    epochs, ten seeds), checked against the committed 16-seed baseline by `check
    --pooled-alpha 0.001` (a one-sided pooled t-test, per-row spread and rank tests, at the
    false-alarm rate chosen in advance; docs/ci.md says why not 0.01)."""
    result = run_cli(
        "run", "--suite", "suites/gate.toml", "--results-dir", str(tmp_path), "--no-figures",
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = run_cli(
        "check", str(tmp_path), "--baseline", "results/gate-baseline", "--pooled-alpha", "0.001"
    )
    assert result.returncode == 0, result.stdout + result.stderr
