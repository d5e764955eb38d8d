"""Typed, versioned results: one `Record` per (variant, backend, device, seed), one `RunFile` per run.

Records round-trip through plain JSON with `to_dict` / `from_dict`; nothing is pickled or
evaluated. A file of a newer `schema_version` than this code knows is refused, not guessed at.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed", "diverged")


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
    loss_curve: list[float] = field(default_factory=list)  # training loss per epoch
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
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown record field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


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
        if not isinstance(version, int):
            raise ValueError("no integer schema_version")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version} is newer than this mnist-bench understands "
                f"({SCHEMA_VERSION}); upgrade mnist-bench"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"run_id", "started_utc", "config", "environment"} - set(data)
        if missing:
            raise ValueError(f"missing field(s): {', '.join(sorted(missing))}")
        kwargs = {k: v for k, v in data.items() if k in names}
        records = kwargs.get("records", [])
        if not isinstance(records, list):
            raise ValueError("records is not a list")
        kwargs["records"] = [Record.from_dict(r) for r in records]
        return cls(**kwargs)


def load_run(path: str | Path) -> RunFile:
    """Read and validate one run file.

    Raises:
        UserError: missing, unreadable, not JSON, or not a run file this version understands.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return RunFile.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a mnist-bench run file ({exc})") from None
