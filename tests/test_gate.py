"""`compare` and `check` through the CLI, on stored run files from real runs of the CI suite.

The fixtures in tests/fixtures/gate/ are real run files of `suites/ci.toml` (full MNIST, three
backends, three seeds, two epochs), trimmed to the fields the gate reads by
`tests/fixtures/gate/trim.py`:
- baseline.json: `mnist-bench baseline update` (the committed baseline, trimmed);
- aa.json: the same suite run again with nothing changed (A/A);
- regressed.json: the same suite with `two-dense` cut to 10 hidden units (an injected regression).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "gate"
BASE, AA, REGRESSED = (str(FIXTURES / f) for f in ("baseline.json", "aa.json", "regressed.json"))


def test_check_passes_an_aa_pair():
    result = run_cli("check", AA, "--baseline", BASE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check passed: 9 row(s)" in result.stdout


def test_check_fails_on_exactly_the_regressed_rows():
    result = run_cli("check", REGRESSED, "--baseline", BASE, "--format", "markdown")
    assert result.returncode == 1, result.stdout + result.stderr
    failing = [line for line in result.stdout.splitlines() if line.startswith("| ")][2:]
    assert len(failing) == 3
    assert all(line.split("|")[1].strip() == "two-dense" for line in failing)
    assert {line.split("|")[2].strip() for line in failing} == {"tensorflow", "jax", "torch"}
    assert "check FAILED: 3 of 9 row(s) failed" in result.stdout
    assert all("Welch p=" in line for line in failing)
    # The rich table (plain when piped) says the same.
    table = run_cli("check", REGRESSED, "--baseline", BASE)
    assert table.returncode == 1 and "check FAILED: 3 of 9 row(s) failed" in table.stdout


def test_compare_shows_verdicts_and_one_sided_rows(tmp_path):
    new = json.loads(Path(REGRESSED).read_text())
    new["records"] = [r for r in new["records"] if r["backend"] != "torch"]
    (tmp_path / "new.json").write_text(json.dumps(new))
    result = run_cli("compare", BASE, str(tmp_path / "new.json"))
    assert result.returncode == 0, result.stderr
    rows = {
        tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[-2].strip()
        for line in result.stdout.splitlines()
        if line.startswith("| ")
    }
    assert rows[("two-dense", "jax")] == "worse"
    assert rows[("single-dense", "jax")] != "worse"
    assert rows[("two-dense", "torch")] == "only in BASE"


def test_markdown_output_for_job_summaries():
    result = run_cli("check", REGRESSED, "--baseline", BASE, "--format", "markdown")
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert lines[1].startswith("| --- |") and len(lines) == 2 + 3


@pytest.mark.parametrize(
    "content,reason",
    [
        ("{not json", "malformed JSON"),
        ('{"schema_version": 99, "run_id": "x"}', "schema_version 99 is newer"),
        (None, "malformed JSON"),  # truncated: the first half of a real file
    ],
)
def test_bad_input_is_exit_2_naming_the_file(tmp_path, content, reason):
    bad = tmp_path / "bad.json"
    bad.write_text(content if content is not None else Path(AA).read_text()[:500])
    for args in (
        ("check", str(bad), "--baseline", BASE),
        ("compare", BASE, str(bad)),
        ("check", AA, "--baseline", str(tmp_path)),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert str(bad) in result.stderr and reason in result.stderr
        assert "Traceback" not in result.stderr


def test_skip_bad_names_the_file_and_goes_on(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "aa.json").write_text(Path(AA).read_text())
    result = run_cli("check", str(tmp_path), "--baseline", BASE, "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert f"skipped {tmp_path / 'bad.json'}: malformed JSON" in result.stderr


def test_nothing_to_match_or_missing_is_exit_2(tmp_path):
    other = json.loads(Path(AA).read_text())
    for r in other["records"]:
        r["variant"] = "cnn"
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = run_cli("check", str(tmp_path / "other.json"), "--baseline", BASE)
    assert result.returncode == 2 and "nothing to match" in result.stderr
    result = run_cli("check", str(tmp_path / "missing.json"), "--baseline", BASE)
    assert result.returncode == 2 and "no such file" in result.stderr


def test_committed_baseline_is_the_ci_suite():
    [path] = (ROOT / "results" / "baseline").glob("*.json")
    run = json.loads(path.read_text())
    assert run["status"] == "complete" and run["config"]["suite"].endswith("ci.toml")
    assert len(run["records"]) == 27 and all(r["status"] == "ok" for r in run["records"])
