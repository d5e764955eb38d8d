"""Typed, versioned results: a `Record` per (variant, backend, device, seed), a `RunFile` per run.

Records round-trip through plain JSON with `to_dict` / `from_dict`; nothing is pickled or
evaluated. A file of a newer `schema_version` than this code knows is refused, not guessed at.
"""

from __future__ import annotations

import dataclasses
import functools
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

    def __post_init__(self) -> None:  # also run by the decoder, which names the record
        if self.status not in STATUSES:
            raise ValueError(f"record status {self.status!r} is not one of {', '.join(STATUSES)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Build a record from JSON data, checking every field's type.

        Raises:
            ValueError: not an object, a missing field, a wrong type or status.
        """
        return _convert(data, cls)


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
    schema_version: int = field(kw_only=True)  # required: a file always says its version

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(RUN_STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFile:
        """Build a run from JSON data, checking its version and every field's type.

        Raises:
            ValueError: a newer or unknown version, a missing field, a wrong type or status.
        """
        try:
            run = _convert(data, cls)
        except ValueError:
            _check_version(data.get("schema_version") if isinstance(data, dict) else None)
            raise
        _check_version(run.schema_version)
        return run


def settings_key(settings: dict[str, Any]) -> str:
    """Training settings as one canonical, hashable text: the same settings, the same key.
    (msgspec's encoder: ten times as fast as json.dumps, which `report` would call per record.)"""
    import msgspec

    return msgspec.json.encode(settings, order="sorted").decode()


def _check_version(version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("no integer schema_version")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"schema_version {version} is newer than this mnist-bench understands "
            f"({SCHEMA_VERSION}); upgrade mnist-bench"
        )
    if version < 1:
        raise ValueError(f"schema_version {version} is not a version mnist-bench wrote")


def _convert(data: Any, cls: type) -> Any:
    import msgspec

    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise ValueError(_explain(exc)) from None


def _explain(exc: Exception) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.records[0].seed`" as
    "records[0].seed: expected int, got str"."""
    message, _, where = str(exc).partition(" - at `$")
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:]
    where = where.rstrip("`").lstrip(".")
    return f"{where}: {message}" if where else message


@dataclass
class _Envelope:
    """Just the version, read when a file fails to decode: a newer file says so first."""

    schema_version: Any = None


@functools.cache
def _decoders() -> tuple[Any, Any]:
    import msgspec

    return msgspec.json.Decoder(RunFile), msgspec.json.Decoder(_Envelope)


def load_run(path: str | Path) -> RunFile:
    """Read and validate one run file.

    msgspec parses and type-checks in one pass, in C, straight into the dataclasses: about
    three times as fast as parsing to dicts and checking them in Python (`report` reads 1,000
    files in about a second). It is strict: NaN, infinities (e.g. 1e999), a bool for a number,
    and invalid UTF-8 are refused. Fields this version does not know are ignored.

    Raises:
        UserError: missing, unreadable, not JSON, or not a run file this version understands.
    """
    import msgspec

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    decoder, envelope = _decoders()
    try:
        run = decoder.decode(raw)
        _check_version(run.schema_version)
        return run
    except msgspec.ValidationError as exc:
        reason = _explain(exc)
        try:  # a newer version explains a mismatch best
            _check_version(envelope.decode(raw).schema_version)
        except ValueError as version:  # msgspec's errors are ValueErrors too
            reason = _explain(version) if "schema_version" in str(version) else reason
        except RecursionError:
            pass
        raise UserError(f"{path}: not a mnist-bench run file ({reason})") from None
    except msgspec.DecodeError as exc:
        reason = str(exc).removeprefix("JSON is malformed: ")
        raise UserError(f"{path}: malformed JSON ({reason})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: unreadable (not UTF-8 text)") from None
    except ValueError as exc:  # the version
        raise UserError(f"{path}: not a mnist-bench run file ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: malformed JSON (nested too deeply)") from None
