"""One identity for a configuration: the five ways unlike or failed records used to be treated as
alike, each on real run files (the committed schema-1 baseline, the published default run, and
fresh tiny runs), plus the identity module's relations by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BACKEND, ROOT, make_record, needs_backend, only_run, run_cli
from mnist_bench.core import identity
from mnist_bench.core.config import TrainSettings
from mnist_bench.core.identity import Job

BASELINE = ROOT / "tests" / "fixtures" / "schema1" / "ci.json"  # CI baseline as schema 1 wrote it
DEFAULT_RUN = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "default.json"  # 5 epochs
TINY = ("--epochs", "1", "--test-limit", "300", "--infer-batch-sizes", "8")


def job(**changes) -> Job:
    base = {"variant": "two-dense", "backend": "jax", "device": "auto", "seed": 0}
    settings = TrainSettings(**changes.pop("settings", {}))
    return Job(**{**base, **changes}, settings=settings)


# ------------------------------------------------------------------------------ relations
def test_relations_by_hand():
    a = job()
    assert identity.same_configuration(a, job(seed=1)) and identity.another_seed(a, job(seed=1))
    assert identity.a_repeat(a, job(repeat=1)) and not identity.another_seed(a, job(repeat=1))
    for other in (
        job(settings={"epochs": 2}),
        job(settings={"train_limit": 6000}),
        job(settings={"threads": 1}),
        job(settings={"op_determinism": True}),
        job(device="cpu"),
        job(dataset="fashion-mnist"),
        job(dataset_digest="abc"),
    ):
        assert not identity.same_configuration(a, other), other
    assert identity.differences([a], [job(settings={"epochs": 2})]) == ["epochs 5 → 2"]
    assert identity.differences([a], [job(settings={"learning_rate": 0.01})]) == [
        "learning_rate default → 0.01"
    ]


def test_seed_values_average_repeats_never_count_them():
    records = [
        make_record(seed=0, test_accuracy=0.90),
        make_record(seed=0, test_accuracy=0.92),  # a repeat of seed 0 (another run file)
        make_record(seed=1, test_accuracy=0.95),
    ]
    values = identity.seed_values(records, lambda r: r.test_accuracy)
    assert values == pytest.approx([0.91, 0.95])


def test_match_on_names_known_fields():
    assert identity.check_match_fields(["variant", "backend"]) == ("variant", "backend")
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        identity.check_match_fields(["colour"])


# ------------------------------------------------------------ 1. a failed record fails the gate
def _baseline_with(tmp_path: Path, **changes) -> Path:
    """The committed baseline, as a new run, with its first record changed as a v1 run wrote a
    record that did not finish (requested device `auto`, no result)."""
    data = json.loads(BASELINE.read_text())
    data["run_id"] += "-new"
    data["records"][0].update(changes)
    path = tmp_path / "new.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "status, error",
    [
        ("failed", "timeout: record exceeded 201 s"),
        ("diverged", "loss became nan in epoch 2"),
        ("skipped", "no GPU visible to tensorflow"),
    ],
)
def test_check_fails_when_a_new_record_did_not_finish(tmp_path, status, error):
    new = _baseline_with(
        tmp_path, status=status, error=error, device="auto", test_accuracy=None, train_seconds=None
    )
    out = run_cli("check", str(new), "--baseline", str(BASELINE))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "check FAILED" in out.stdout and f"{status}: {error}" in out.stdout
    assert "single-dense" in out.stdout


def test_check_fails_when_a_baseline_row_is_missing(tmp_path):
    data = json.loads(BASELINE.read_text())
    data["run_id"] += "-new"
    data["records"] = [r for r in data["records"] if r["backend"] != "torch"]
    new = tmp_path / "new.json"
    new.write_text(json.dumps(data))
    out = run_cli("check", str(new), "--baseline", str(BASELINE))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "check FAILED: 3 of 9 row(s)" in out.stdout and "missing in the results" in out.stdout
    allowed = run_cli("check", str(new), "--baseline", str(BASELINE), "--allow-missing")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "check passed: 6 row(s)" in allowed.stdout and "3 baseline row(s)" in allowed.stderr


def test_check_of_the_baseline_against_itself_is_refused():
    out = run_cli("check", str(BASELINE), "--baseline", str(BASELINE))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "the same run" in out.stderr


# ------------------------------------------------- 2. no verdict between unlike configurations
def test_compare_lists_unlike_rows_with_what_differs():
    out = run_cli("compare", str(BASELINE), str(DEFAULT_RUN), "--format", "markdown")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")][2:]
    assert rows and not any("better" in r or "worse" in r for r in rows)
    assert all("epochs 2 → 5" in r for r in rows if "only in BASE" in r)
    assert sum("only in BASE" in r for r in rows) == 9


def test_compare_across_settings_on_purpose_shows_them_on_every_row():
    out = run_cli(
        "compare",
        str(BASELINE),
        str(DEFAULT_RUN),
        "--match-on",
        "variant,backend,device",
        "--format",
        "markdown",
    )
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 9 and all("epochs 2 → 5" in r for r in rows)
    assert not any("only in" in r for r in rows)


def test_check_of_an_unlike_run_matches_nothing_and_says_why():
    out = run_cli("check", str(DEFAULT_RUN), "--baseline", str(BASELINE))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "nothing to match" in out.stderr and "epochs 2 → 5" in out.stderr


# ----------------------------------------- 3, 4. reports tell configurations and repeats apart
@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
@needs_backend
def test_report_keeps_unlike_runs_apart_and_repeats_as_repeats(tmp_path):
    common = ("run", "-b", BACKEND, "-v", "single-dense", *TINY, "--results-dir", str(tmp_path))
    for limit in ("600", "600", "1200"):  # seed 0 twice at 600 samples, once at 1,200
        out = run_cli(*common, "--train-limit", limit, "--no-figures")
        assert out.returncode == 0, out.stderr
        assert "figures in" not in out.stdout
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"] * 3  # no figure folders
    out = run_cli("report", str(tmp_path), "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    assert len(rows) == 2  # two configurations, not one merged row
    by_limit = {r[header.index("train_limit")]: r for r in rows}
    assert set(by_limit) == {"600", "1200"}
    assert by_limit["600"][header.index("n")] == "1"  # one seed ...
    assert by_limit["600"][header.index("runs")] == "2"  # ... run twice
    table = run_cli("report", str(tmp_path), "--format", "markdown")
    assert "train_limit=600" in table.stdout and "train_limit=1200" in table.stdout
    assert "1 (2 runs)" in table.stdout


# ------------------------------------------------ 5. determinism pairs within a grid point
@pytest.mark.slow  # a --check-determinism grid: in .ci/run's slow step
@needs_backend
def test_check_determinism_pairs_records_of_the_same_grid_point(tmp_path):
    suite = tmp_path / "grid.toml"
    suite.write_text(
        f'variants = ["single-dense"]\nbackends = ["{BACKEND}"]\ntrain_limit = 600\n'
        "test_limit = 300\ninfer_batch_sizes = [8]\ncheck_determinism = true\n"
        "[settings]\nepochs = 1\n[grid]\nlearning_rate = [0.001, 0.01]\n"
    )
    out = run_cli("run", "--suite", str(suite), "--results-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path / "runs")
    assert len(run.records) == 6 and all(r.status == "ok" for r in run.records)
    checked = [r for r in run.records if r.settings.op_determinism]  # the rest: its cost
    assert len(checked) == 4 and run.determinism_cost[BACKEND].pairs == 2
    for record in checked:
        twin = next(r for r in checked if r is not record and r.job.seed_key == record.job.seed_key)
        assert record.repeat != twin.repeat
        assert record.deterministic is (record.weights_sha256 == twin.weights_sha256)
    # The two learning rates train to different weights: had they been paired, the flag lied.
    lrs = {r.settings.learning_rate: r.weights_sha256 for r in run.records if r.repeat == 0}
    assert len(set(lrs.values())) == 2
