"""Typed, versioned results: a `Record` per (variant, backend, device, seed), a `RunFile` per run.

Records round-trip through plain JSON with `to_dict` / `from_dict`; nothing is pickled or
evaluated. A file of a newer `schema_version` than this code knows is refused, not guessed at.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed", "diverged")
RUN_STATUSES = ("running", "complete", "interrupted")


@dataclass
class Record:
    """The result of training and measuring one variant on one backend, device and seed."""

    variant: str
    backend: str
    device: str
    seed: int
    status: str = "ok"
    error: str | None = None
    repeat: int = 0  # > 0 only for the second process of --check-determinism
    requested_device: str | None = None  # what the job asked for: auto, cpu or gpu
    dataset: str = "mnist"
    settings: dict[str, Any] = field(default_factory=dict)  # epochs, batch size, optimizer...
    epochs: int | None = None
    batch_size: int | None = None
    params: int | None = None
    train_samples: int | None = None
    test_samples: int | None = None
    test_accuracy: float | None = None  # trace(confusion_matrix) / sum(confusion_matrix)
    test_loss: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    first_epoch_seconds: float | None = None  # includes tracing and compilation
    steady_epoch_seconds: float | None = None  # median of the epochs after the first
    train_seconds: float | None = None
    train_samples_per_second: float | None = None  # steady state: epochs after the first
    infer_samples_per_second: float | None = None  # predict() over the test set
    inference: list[dict[str, Any]] = field(default_factory=list)  # per batch size
    latency_ms: dict[str, float] | None = None  # batch-1 p50/p95/p99
    accuracy_curve: list[float] = field(default_factory=list)  # test accuracy after each epoch
    loss_curve: list[float | None] = field(default_factory=list)  # per epoch; None: not finite
    time_to_accuracy: list[dict[str, Any]] = field(default_factory=list)
    diverged_at_epoch: int | None = None
    flops_per_train_sample: int | None = None
    flops_per_infer_sample: int | None = None
    achieved_gflops: float | None = None
    mfu: float | None = None
    peak_rss_mib: float | None = None
    weights_sha256: str | None = None
    predictions_sha256: str | None = None
    op_determinism: list[str] = field(default_factory=list)  # what was switched on
    deterministic: bool | None = None
    threads: dict[str, Any] = field(default_factory=dict)
    contention: dict[str, float] | None = None
    contended: bool = False
    confusion_matrix: list[list[int]] | None = None
    misclassified: list[list[int]] = field(default_factory=list)  # [test index, true, predicted]
    started_utc: str | None = None
    wall_seconds: float | None = None

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        return (self.variant, self.backend, self.device, self.seed, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Build a record from JSON, checking every field's type.

        Raises:
            ValueError: not an object, an unknown or missing field, a wrong type or status.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a record is {_json_type(data)}, not an object")
        kwargs = _typed_fields(
            cls, data, "record", required=("variant", "backend", "device", "seed")
        )
        if kwargs.get("status", "ok") not in STATUSES:
            raise ValueError(
                f"record status {kwargs['status']!r} is not one of {', '.join(STATUSES)}"
            )
        return cls(**kwargs)


@dataclass
class RunFile:
    """One `mnist-bench run`: its configuration, environment and records, saved as one JSON file."""

    run_id: str
    started_utc: str
    config: dict[str, Any]
    environment: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    aggregates: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running, complete, interrupted
    finished_utc: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # jobs not run (interrupted)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFile:
        if not isinstance(data, dict):
            raise ValueError("top level is not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("no integer schema_version")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version} is newer than this mnist-bench understands "
                f"({SCHEMA_VERSION}); upgrade mnist-bench"
            )
        if version < 1:
            raise ValueError(f"schema_version {version} is not a version mnist-bench wrote")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}  # newer minor fields: ignored
        records = known.pop("records", [])
        kwargs = _typed_fields(
            cls, known, "run file", required=("run_id", "started_utc", "config", "environment")
        )
        if kwargs.get("status", "running") not in RUN_STATUSES:
            raise ValueError(f"status {kwargs['status']!r} is not one of {', '.join(RUN_STATUSES)}")
        if not isinstance(records, list):
            raise ValueError(f"records is {_json_type(records)}, not a list")
        kwargs["records"] = []
        for i, record in enumerate(records):
            try:
                kwargs["records"].append(Record.from_dict(record))
            except ValueError as exc:
                raise ValueError(f"records[{i}]: {exc}") from None
        return cls(**kwargs)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _typed_fields(
    cls: type, data: dict[str, Any], what: str, required: tuple[str, ...]
) -> dict[str, Any]:
    """`data`'s fields, each checked against `cls`'s annotation; ValueError on any mismatch."""
    checks = _field_checks(cls)
    unknown = data.keys() - checks.keys()
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    for name, value in data.items():
        hint, scalars, conforms = checks[name]
        # Scalar fields (most of them) are checked inline: a call per field would dominate.
        if type(value) not in scalars if scalars is not None else not conforms(value):
            raise ValueError(f"{name} is {_json_type(value)}, expected {_type_name(hint)}")
    return dict(data)


@functools.cache
def _field_checks(
    cls: type,
) -> dict[str, tuple[Any, frozenset[type] | None, Callable[[Any], bool]]]:
    return {
        f.name: (
            _hints(cls)[f.name],
            _scalar_types(_hints(cls)[f.name]),
            _checker(_hints(cls)[f.name]),
        )
        for f in dataclasses.fields(cls)
    }


_LIST = frozenset({list})
_SCALARS = {
    int: frozenset({int}),
    float: frozenset({int, float}),
    str: frozenset({str}),
    bool: frozenset({bool}),
    type(None): frozenset({type(None)}),
}


def _scalar_types(hint: Any) -> frozenset[type] | None:
    """The exact JSON types a scalar annotation (or a union of them) admits; None otherwise.
    Exact types: a bool is not an int here, and an int passes for a float."""
    if hint in _SCALARS:
        return _SCALARS[hint]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        parts = [_scalar_types(arg) for arg in typing.get_args(hint)]
        if all(part is not None for part in parts):
            return frozenset().union(*parts)
    return None


@functools.cache
def _checker(hint: Any) -> Callable[[Any], bool]:
    """Whether a JSON value fits a (simple) annotation, as one function built once per hint:
    str, int, float, bool, None, list[...], dict[...], unions, Any."""
    if hint is Any:
        return lambda value: True
    scalars = _scalar_types(hint)
    if scalars is not None:
        return lambda value: type(value) in scalars
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        options = tuple(_checker(arg) for arg in args)
        return lambda value: any(check(value) for check in options)
    if origin is list:  # set(map(type, ...)) checks a whole list at C speed
        items = _scalar_types(args[0])
        if items is not None:  # curves
            return lambda value: type(value) is list and set(map(type, value)) <= items
        inner = args[0]
        if typing.get_origin(inner) is list and _scalar_types(typing.get_args(inner)[0]):
            cells = _scalar_types(typing.get_args(inner)[0])  # confusion matrix, misclassified
            return lambda value: (
                type(value) is list
                and set(map(type, value)) <= _LIST
                and set(map(type, itertools.chain.from_iterable(value))) <= cells
            )
        item = _checker(inner)
        return lambda value: type(value) is list and all(map(item, value))
    if origin is dict:
        keys, val = _scalar_types(args[0]), _checker(args[1])
        if keys is not None and args[1] is Any:  # settings, environment blocks
            return lambda value: type(value) is dict and set(map(type, value)) <= keys
        key = _checker(args[0])
        return lambda value: (
            type(value) is dict and all(map(key, value)) and all(map(val, value.values()))
        )
    return lambda value: isinstance(value, hint)


def _conforms(value: Any, hint: Any) -> bool:
    return _checker(hint)(value)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if typing.get_args(hint) else hint.__name__


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def load_run(path: str | Path) -> RunFile:
    """Read and validate one run file.

    JSON is parsed by orjson: about three times as fast as the standard library (`report` reads
    1,000 files in well under 2 s), and strict: NaN, infinities (e.g. 1e999), nesting deeper
    than 1,024 and invalid UTF-8 are refused.

    Raises:
        UserError: missing, unreadable, not JSON, or not a run file this version understands.
    """
    import orjson

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg:
            raise UserError(f"{path}: unreadable (not UTF-8 text)") from None
        if "depth limit" in exc.msg:
            raise UserError(f"{path}: malformed JSON (nested too deeply)") from None
        raise UserError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return RunFile.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a mnist-bench run file ({exc})") from None
