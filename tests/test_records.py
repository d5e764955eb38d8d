"""Records and run files round-trip through JSON; storage is atomic and append-only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import unwritable
from conftest import ROOT, make_record
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import storage
from mnist_bench.runfile.records import SCHEMA_VERSION, RunFile, load_run

# A real schema-1 file: the CI baseline as committed before schema 2 (2 epochs, seeds 0-2).
SCHEMA1_BASELINE = ROOT / "tests" / "fixtures" / "schema1" / "ci.json"


def sample_run() -> RunFile:
    record = make_record(
        "two-dense",
        "jax",
        "cpu",
        0,
        test_accuracy=0.97,
        epoch_seconds=[1.5, 0.5],
        confusion_matrix=[[1] * 10] * 10,
        time_to_accuracy=[{"target": 0.97, "epoch": 2, "seconds": 2.0}],
    )
    return RunFile(
        "r1",
        "2026-11-24T00:00:00Z",
        {"seeds": [0]},
        {"machine_id": "abc"},
        [record],
        schema_version=SCHEMA_VERSION,
    )


def test_round_trip(tmp_path):
    run = sample_run()
    path = tmp_path / "run.json"
    storage.write_json(path, run.to_dict())
    assert load_run(path) == run
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "malformed JSON"),
        ('{"schema_version": 99, "run_id": "x"}', "newer than this mnist-bench"),
        ("[1, 2]", "expected object, got array"),
        ('{"schema_version": 2}', "missing required field run_id"),
        ('{"schema_version": 1}', "missing required field run_id"),
        (
            '{"schema_version": 1, "run_id": "x", "started_utc": "t", "config": {}, '
            '"environment": {}, "records": [{"variant": "a"}]}',
            "not a mnist-bench run file",
        ),
        (
            '{"schema_version": 2, "run_id": "x", "started_utc": "t", "config": {}, '
            '"environment": {}, "records": [{"job": {"variant": "a", "backend": "jax", '
            '"device": "cpu", "seed": 0, "settings": {"epochs": 0}}}]}',
            "records[0].job.settings: epochs must be an integer >= 1",
        ),
        (
            '{"schema_version": 2, "run_id": "x", "started_utc": "t", "config": {}, '
            '"environment": {}, "records": [{"job": {"variant": "a", "backend": "jax", '
            '"device": "cpu", "seed": -1, "settings": {}}}]}',
            "seed -1 is outside",
        ),
    ],
)
def test_bad_run_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)):
        load_run(path)


def test_truncated_run_file(tmp_path):
    path = tmp_path / "t.json"
    storage.write_json(path, sample_run().to_dict())
    path.write_text(path.read_text()[:100])
    with pytest.raises(UserError, match="malformed JSON"):
        load_run(path)


def test_reserve_never_overwrites(tmp_path):
    first = storage.reserve_run_path(tmp_path, "same", {"a": 1})
    second = storage.reserve_run_path(tmp_path, "same", {"a": 2})
    assert first != second
    assert json.loads(first.read_text()) == {"a": 1}
    assert json.loads(second.read_text()) == {"a": 2}


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(UserError, match="disk full"):
        storage.write_json(tmp_path / "run.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder(tmp_path):
    """In a child process held to the folder's mode, also when the tests run as root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    code = (
        "import sys; from pathlib import Path\n"
        "from mnist_bench.runfile import storage; from mnist_bench.core import errors\n"
        "try:\n    storage.ensure_dir(Path(sys.argv[1]))\n"
        "except errors.UserError as exc:\n    sys.exit(str(exc))\n"
    )
    with unwritable.read_only(folder) as preexec:
        out = subprocess.run(
            [sys.executable, "-c", code, str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            preexec_fn=preexec,
        )
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == f"{folder}: results folder is not writable"


def test_results_folder_is_created(tmp_path):
    assert storage.ensure_dir(tmp_path / "a" / "b").is_dir()


def test_schema_1_baseline_is_migrated_on_read():
    """A real schema-1 file (the CI baseline as first committed): each record's loose identity
    fields, the run's limits and determinism switch, and the dataset digests become its job."""
    run = load_run(SCHEMA1_BASELINE)
    assert run.schema_version == SCHEMA_VERSION == 2
    assert len(run.records) == 27 and len({r.key for r in run.records}) == 27
    first = run.records[0]
    assert (first.variant, first.backend, first.seed, first.device) == (
        "single-dense",
        "tensorflow",
        0,
        "cpu",
    )
    assert first.job.device == "auto"  # requested; `device` says where it ran
    assert first.settings.epochs == 2 and first.settings.train_limit is None
    assert first.settings.op_determinism is False
    assert len(first.job.dataset_digest) == 16  # from the environment's digests


def test_schema_1_record_that_never_started_keeps_its_identity(tmp_path):
    """v1 wrote a failed record's requested device (`auto`) where finished ones said `cpu`, so
    nothing matched it; migrated, it has the same configuration as the finished ones."""
    data = json.loads(SCHEMA1_BASELINE.read_text())
    data["records"][0].update(status="failed", error="timeout", device="auto", test_accuracy=None)
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    run = load_run(path)
    failed, ok = run.records[0], run.records[1]
    assert failed.status == "failed" and failed.device is None and failed.where == "auto"
    assert failed.job.config_key == ok.job.config_key and failed.seed != ok.seed


def test_record_round_trips_its_job(tmp_path):
    run = sample_run()
    again = RunFile.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again.records[0].job == run.records[0].job
    assert again.records[0].key == run.records[0].key
