"""`mnist-bench schema`: the run file's JSON Schema, and every committed run file valid under it.

The validator is a real one (`jsonschema`, draft 2020-12); the reader (`load_run`) must agree
with it on good files and on broken ones.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from conftest import FRAMEWORKS, ROOT, cli_importing_none_of, make_record, run_cli
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import records, storage
from mnist_bench.runfile.schema import run_file_schema

COMMITTED = sorted(
    [
        *(ROOT / "results" / "baseline").glob("*.json"),
        *(ROOT / "results" / "published").rglob("*.json"),
    ]
)


@pytest.fixture(scope="module")
def schema() -> dict:
    out = run_cli("schema")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def validator(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_command_prints_the_generated_schema(schema):
    assert schema == run_file_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:mnist-bench:run-file:{records.SCHEMA_VERSION}"
    assert str(records.SCHEMA_VERSION) in schema["title"]
    run = schema["$defs"]["RunFile"]
    assert run["properties"]["schema_version"]["const"] == records.SCHEMA_VERSION
    assert set(run["required"]) >= {"run_id", "started_utc", "config", "environment"}
    # generated from the dataclasses: every field of a record is there, the job typed
    record = schema["$defs"]["Record"]["properties"]
    assert "test_accuracy" in record and record["job"] == {"$ref": "#/$defs/Job"}
    assert schema["$defs"]["TrainSettings"]["properties"]["epochs"]["minimum"] == 1


def test_schema_command_imports_no_framework():
    out = cli_importing_none_of((*FRAMEWORKS, "matplotlib"), "schema")
    assert json.loads(out.stdout)["title"]


def test_there_are_committed_run_files():
    names = {p.parent.name for p in COMMITTED}
    assert "baseline" in names and len(COMMITTED) >= 3, COMMITTED


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_run_file_is_valid(validator, path):
    data = json.loads(path.read_bytes())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]
    assert not errors, errors[:5]
    assert records.load_run(path).records  # and the reader takes it


def test_a_file_the_tool_writes_is_valid(validator, tmp_path):
    run = records.RunFile(
        run_id="r",
        started_utc=storage.utc_now(),
        config={},
        environment={},
        records=[
            make_record(test_accuracy=0.9, epochs=2, learning_rate=1e-3),
            make_record(status="failed", device=None, error="boom", seed=1),
        ],
        pending=[make_record(seed=2).job],
        status="interrupted",
        schema_version=records.SCHEMA_VERSION,
    )
    storage.write_json(tmp_path / "run.json", run.to_dict())
    validator.validate(json.loads((tmp_path / "run.json").read_bytes()))


def _set(path: str, value):
    def change(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()

BROKEN = {
    "schema_version 3": _set("schema_version", 3),
    "run_id missing": _set("run_id", _DELETE),
    "run status": _set("status", "done"),
    "record status": _set("records.0.status", "great"),
    "accuracy a string": _set("records.0.test_accuracy", "0.97"),
    "accuracy a bool": _set("records.0.test_accuracy", True),
    "ran on a tpu": _set("records.0.device", "tpu"),
    "job backend": _set("records.0.job.backend", "theano"),
    "negative seed": _set("records.0.job.seed", -1),
    "job without variant": _set("records.0.job.variant", _DELETE),
    "zero epochs": _set("records.0.job.settings.epochs", 0),
    "optimizer": _set("records.0.job.settings.optimizer", "lbfgs"),
    "learning rate 0": _set("records.0.job.settings.learning_rate", 0),
    "records an object": _set("records", {}),
    "curve of strings": _set("records.0.accuracy_curve", ["a"]),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_copy_fails_validation_and_reading(validator, tmp_path, name):
    good = json.loads(COMMITTED[0].read_bytes())
    broken = copy.deepcopy(good)
    BROKEN[name](broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(UserError):  # the reader refuses it too: schema and reader agree
        records.load_run(path)


def test_unknown_fields_are_valid_as_the_reader_ignores_them(validator, tmp_path):
    data = json.loads(COMMITTED[0].read_bytes())
    data["notes"] = "added by hand"
    data["records"][0]["extra"] = [1, 2]
    validator.validate(data)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    assert records.load_run(path).run_id == data["run_id"]
