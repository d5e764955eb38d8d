"""Records and run files round-trip through JSON; storage is atomic and append-only."""

from __future__ import annotations

import json
import os

import pytest

from bench import storage
from bench.errors import UserError
from bench.records import SCHEMA_VERSION, Record, RunFile, load_run


def sample_run() -> RunFile:
    record = Record(
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
        ('{"schema_version": 1}', "missing required field run_id"),
        (
            '{"schema_version": 1, "run_id": "x", "started_utc": "t", "config": {}, '
            '"environment": {}, "records": [{"variant": "a"}]}',
            "not a mnist-bench run file",
        ),
    ],
)
def test_bad_run_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
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
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(UserError, match="not writable"):
            storage.ensure_dir(folder)
    finally:
        folder.chmod(0o700)


def test_results_folder_is_created(tmp_path):
    assert storage.ensure_dir(tmp_path / "a" / "b").is_dir()
