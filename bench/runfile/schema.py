"""The run file's JSON Schema (`mnist-bench schema`), generated from the typed records.

msgspec derives the shape (fields, types, required, defaults, docstrings) from `RunFile`,
`Record`, `Job` and `TrainSettings`; what their `__post_init__` checks, and the limits that
`TrainSettings` fields carry in their metadata, are added as `enum`, `const`, `minimum` and
`maximum`, so the schema refuses what `load_run` refuses. Unknown fields are allowed, as the
reader ignores them. Files of schema version 1 are still read (migrated on read) but are not
described here.
"""

from __future__ import annotations

from typing import Any

from mnist_bench.core import config
from mnist_bench.runfile import records

SCHEMA_ID = f"urn:mnist-bench:run-file:{records.SCHEMA_VERSION}"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
LABELS_PATTERN = "^[A-Za-z0-9+/]*={0,2}$"  # base64 (`records.pack_labels`)
SHARD_PATTERN = "^[1-9][0-9]*/[1-9][0-9]*$"  # I/N; `config.parse_shard` checks I <= N too
MODEL_DIGEST_PATTERN = "^([0-9a-f]{16})?$"  # `identity.MODEL_DIGEST`; "": unknown
SHA256_PATTERN = "^([0-9a-f]{64})?$"


def _nullable(prop: dict[str, Any], **checks: Any) -> None:
    """Add `checks` to a property, or to its non-null branch when it is `X | None`."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") != "null":
            branch.update(checks)


def _settings_checks(props: dict[str, Any]) -> None:
    """The limits each `TrainSettings` field carries in its metadata (`config.check_value`)."""
    for name, check in config.checks(config.TrainSettings).items():
        checks = {
            key: check[word]
            for word, key in (("min", "minimum"), ("max", "maximum"), ("above", "exclusiveMinimum"))
            if word in check
        }
        if "choices" in check:
            checks["enum"] = list(check["choices"])
        if checks:
            _nullable(props[name], **checks)


def _record_ranges(props: dict[str, Any]) -> None:
    """The ranges `records.check_consistency` holds a record's numbers to (what it checks
    across fields, a square confusion matrix summing to `test_samples`, no schema can say)."""
    for name, (low, high) in records.RANGES.items():
        _nullable(props[name], minimum=low, maximum=high)
    for name, (low, high) in records.ITEM_RANGES.items():
        _nullable(props[name]["items"], minimum=low, maximum=high)
    for name in records.COUNTS:
        _nullable(props[name], minimum=0)
    latency = {"type": "number", "minimum": 0, "maximum": records.MAX_VALUE}
    keys = records.LATENCY_KEYS
    _nullable(props["latency_ms"], required=list(keys), properties=dict.fromkeys(keys, latency))
    _nullable(props["confusion_matrix"], minItems=1, items={
        "type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0},
    })  # fmt: skip
    props["steady_interval"]["maxItems"] = 2  # [low, high], or empty
    props["misclassified"]["items"].update(
        minItems=3, maxItems=3, items={"type": "integer", "minimum": 0}
    )


def run_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a run file of this version, as a dict."""
    import msgspec

    generated = msgspec.json.schema(records.RunFile)
    defs = generated["$defs"]
    run, record, job = (defs[n]["properties"] for n in ("RunFile", "Record", "Job"))
    run["schema_version"]["const"] = records.SCHEMA_VERSION
    run["status"]["enum"] = list(records.RUN_STATUSES)
    _nullable(run["shard"], pattern=SHARD_PATTERN)
    defs["ShardOrigin"]["properties"]["shard"]["pattern"] = SHARD_PATTERN
    record["status"]["enum"] = list(records.STATUSES)
    _nullable(record["device"], enum=["cpu", "gpu"])
    _record_ranges(record)
    run["environment"]["properties"] = {
        name: {"type": ["object" if kind is dict else "array", "null"]}
        for name, kind in records.ENVIRONMENT_SHAPES.items()
    }
    run["environment"]["properties"]["dataset"]["properties"] = {
        "class_names": {"type": ["array", "null"]}
    }
    job["backend"]["enum"] = list(config.BACKENDS)
    job["device"]["enum"] = list(config.DEVICES)
    job["seed"].update(minimum=0, maximum=config.MAX_SEED)
    job["repeat"]["minimum"] = 0
    job["model_digest"]["pattern"] = MODEL_DIGEST_PATTERN
    defs["VariantSource"]["properties"]["sha256"]["pattern"] = SHA256_PATTERN
    _settings_checks(defs["TrainSettings"]["properties"])
    _nullable(record["predicted_labels"], pattern=LABELS_PATTERN)
    for name, prop in defs["DeterminismCost"]["properties"].items():
        low = {"minimum": 0} if name == "noisy_pairs" else {"exclusiveMinimum": 0}
        prop.update(low, maximum=records.MAX_VALUE)
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": f"mnist-bench run file, schema version {records.SCHEMA_VERSION}",
        "description": "One `mnist-bench run`: its configuration, environment and records. "
        "Generated from mnist_bench.runfile.records; unknown fields are ignored by the reader. "
        "Files of schema version 1 are read too (migrated on read) but not described here.",
        **generated,
    }
