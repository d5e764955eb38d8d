"""A run pins the data it was measured on (its environment's dataset digests): resuming it on
other data is refused, a pin of the wrong shape included; a run without a pin resumes."""

from __future__ import annotations

import json

import pytest
from mnist_bench.core.errors import UserError
from mnist_bench.execute.runner import Run


def _interrupted(tmp_path, digests) -> str:
    run = {
        "schema_version": 2,
        "run_id": "r",
        "started_utc": "t",
        "status": "interrupted",
        "config": {},
        "environment": {"dataset_digests": digests},
        "records": [],
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return str(path)


@pytest.mark.parametrize("digests", [{"x_train": "0" * 64}, {"x_train": 5}, {"x_train": None}])
def test_resume_on_other_data_is_refused(tmp_path, digests):
    path = _interrupted(tmp_path, digests)
    with pytest.raises(UserError, match="the dataset 'mnist' is not the one this run used"):
        Run.resume(path)


@pytest.mark.parametrize("digests", [None, {}])
def test_a_run_without_a_pin_resumes(tmp_path, digests):
    resumed = Run.resume(_interrupted(tmp_path, digests))
    assert resumed.file.status == "running"
