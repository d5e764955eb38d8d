"""Typed, versioned results: a `Record` per job, a `RunFile` per run.

Records round-trip through plain JSON with `to_dict` / `from_dict`; nothing is pickled or
evaluated. A file of a newer `schema_version` than this code knows is refused, not guessed at;
an older one is migrated on read (`migrate_v1`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_bench.core import escape
from mnist_bench.core.config import parse_shard
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job, VariantSource, dataset_digest
from mnist_bench.core.metrics import MAX_VALUE, METRICS
from mnist_bench.runfile import files

SCHEMA_VERSION = 2  # 2: a record holds its typed job (schema 1 is migrated on read)
STATUSES = ("ok", "skipped", "failed", "diverged")
RUN_STATUSES = ("running", "complete", "interrupted")


@dataclass
class Machine:
    """The node that produced a record, where a run spans several (`--executor ray`): who it
    is and what it has. Records of a local run leave it out; the run's environment block says.

    Attributes:
        node_id: the Ray node's id.
        hostname: the node's host name.
        machine_id: the hardware fingerprint (`environment.machine_id`): equal on identical
            machines.
        cpu: the CPU model; `cores`: logical cores; `usable_cores`: those the process may use.
        memory_gib: total memory.
        gpus: GPU names (nvidia-smi).
        python, mnist_bench: versions on the node; `packages`: its framework versions.
        retried_after: why a first attempt on another node was lost (the node died), if it was.
    """

    node_id: str = ""
    hostname: str = ""
    machine_id: str = ""
    cpu: str = ""
    cores: int | None = None
    usable_cores: int | None = None
    memory_gib: float | None = None
    gpus: list[str] = field(default_factory=list)
    python: str = ""
    mnist_bench: str = ""
    packages: dict[str, str | None] = field(default_factory=dict)
    retried_after: str | None = None


@dataclass
class Record:
    """The result of one job: training and measuring one variant on one backend, device and seed.

    `job` is the record's identity (`core.identity`); one that never started still has it.
    `device` is where it ran (cpu or gpu), beside the requested `job.device`; None if it never
    started.
    """

    job: Job
    status: str = "ok"
    error: str | None = None
    traceback: str | None = None  # a failure in the user's model code, in full (never printed)
    device: str | None = None
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
    threads: dict[str, Any] = field(default_factory=dict)  # what was in force
    # The Keras knobs in force: jit_compile as Keras resolved it, dtype_policy, steps_per_execution
    knobs: dict[str, Any] = field(default_factory=dict)
    # other_cpu_share, steal_share (where the OS counts steal) and loadavg_1m over the record
    contention: dict[str, float] | None = None
    contended: bool = False
    steady_epoch_cv: float | None = None  # std / mean of the epochs after the first (2 or more)
    steady_epoch_max_min: float | None = None  # slowest / fastest epoch after the first
    # Too dispersed to trust: the steady windows' MAD / median is 10% or more (the steady
    # epochs' where a record has no windows; `training.is_unstable`)
    unstable: bool = False
    # Timing windows, in the order trained: each epoch cut at the start of every K-th batch
    # (`training.WINDOWS_PER_EPOCH` a epoch); wall seconds and samples trained in each. The
    # windows of an epoch add up to its `epoch_seconds`.
    window_seconds: list[float] = field(default_factory=list)
    window_samples: list[int] = field(default_factory=list)
    # Leading windows left out as warm-up: the first epoch's (where more follow), then MSER-5's
    warmup_windows: int | None = None
    # Median over the windows after the warm-up, in seconds per 1,000 samples, and its 95%
    # distribution-free interval [low, high] (empty: too few windows for one)
    steady_seconds_per_1k: float | None = None
    steady_interval: list[float] = field(default_factory=list)
    # The worker process's user + system CPU seconds per epoch, read where the wall clock is
    epoch_cpu_seconds: list[float] = field(default_factory=list)
    cpu_seconds_per_1k_samples: float | None = None  # steady epochs (after the first)
    confusion_matrix: list[list[int]] | None = None
    misclassified: list[list[int]] = field(default_factory=list)  # [test index, true, predicted]
    # Every test prediction in test-set order, packed (`pack_labels`): what `parity` compares.
    # Kept as text, so reading a run file never unpacks it.
    predicted_labels: str | None = None
    started_utc: str | None = None
    wall_seconds: float | None = None
    machine: Machine | None = None  # the node that ran it (`--executor ray`); None: the run's
    variant_source: VariantSource | None = None  # where the variant came from (its file, digest)
    # A test hook's doing, never a real result: trained with a bug on purpose (`execute.inject`:
    # MNIST_BENCH_INJECT_BUG, e.g. {"label_noise": 0.05}) or slowed on purpose
    # (MNIST_BENCH_INJECT_SLOWDOWN, {"slowdown": 0.1}: every window 10% longer). None: real.
    injected: dict[str, Any] | None = None

    # The identity, read through the job.
    variant = property(lambda self: self.job.variant)
    backend = property(lambda self: self.job.backend)
    seed = property(lambda self: self.job.seed)
    repeat = property(lambda self: self.job.repeat)
    dataset = property(lambda self: self.job.dataset)
    settings = property(lambda self: self.job.settings)
    requested_device = property(lambda self: self.job.device)

    @property
    def key(self) -> tuple:
        return self.job.key

    @property
    def slot(self) -> tuple:
        """The job and the node it ran on: `--on-every-node` makes one record per job and node."""
        return (self.key, self.machine.node_id if self.machine else "")

    @property
    def where(self) -> str:
        """Where it ran, or where it was asked to run if it never started."""
        return self.device or self.job.device

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:  # also run by the decoder, which names the record
        if self.status not in STATUSES:
            raise ValueError(f"record status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.device not in (None, "cpu", "gpu"):
            raise ValueError(f"device {self.device!r} is not cpu or gpu")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Build a record from JSON data, checking every field's type.

        Raises:
            ValueError: not an object, a missing field, a wrong type or status.
        """
        return _convert(data, cls)


@dataclass
class DeterminismCost:
    """What one backend's op-determinism switches cost its steady epoch, from the pairs of
    records whose jobs differ only in `op_determinism` (`runner.determinism_cost`).

    Attributes:
        steady_seconds_off: mean steady epoch over the pairs, switches off.
        steady_seconds_on: the same, switches on.
        ratio: on / off, the geometric mean of the pairs' ratios (1.4: 40% slower).
        pairs: how many pairs (variants x seeds x settings) it is taken over.
        noisy_pairs: pairs with a contended or unstable record: their timings, and so the
            ratio, are not to be trusted.
    """

    steady_seconds_off: float
    steady_seconds_on: float
    ratio: float
    pairs: int
    noisy_pairs: int = 0


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
    pending: list[Job] = field(default_factory=list)  # jobs not run (interrupted)
    stop_reason: str | None = None  # why an interrupted run stopped (a signal, a full disk)
    # The digest of the whole grid's job keys (`shards.grid_digest`): one for every shard of it
    grid_digest: str | None = None
    shard: str | None = None  # I/N: this run did share I of N of its grid (`run --shard`)
    shard_jobs: list[Job] = field(default_factory=list)  # a shard's share of the grid, all of it
    merged_from: list[ShardOrigin] = field(default_factory=list)  # `mnist-bench merge`'s inputs
    # Per backend, what its op-determinism switches cost (`--check-determinism`)
    determinism_cost: dict[str, DeterminismCost] = field(default_factory=dict)
    schema_version: int = field(kw_only=True)  # required: a file always says its version

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(RUN_STATUSES)}")
        if self.shard is not None:
            parse_shard(self.shard)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFile:
        """Build a run from JSON data, checking its version and every field's type.

        Raises:
            ValueError: a newer or unknown version, a missing field, a wrong type or status.
        """
        version = data.get("schema_version") if isinstance(data, dict) else None
        _check_version(version)
        if version == 1:
            data = migrate_v1(data)
        return _convert(data, cls)


@dataclass
class ShardOrigin:
    """One shard's run file, as `mnist-bench merge` found it: which share, which run, where.

    Attributes:
        shard: I/N.
        run_id, started_utc, finished_utc, status: the shard's run.
        environment: the shard run's environment block (its machine, versions, commit).
    """

    shard: str
    run_id: str
    started_utc: str
    finished_utc: str | None
    status: str
    environment: dict[str, Any]

    def __post_init__(self) -> None:
        parse_shard(self.shard)


# Record fields of schema 1 that schema 2 keeps in the record's job.
_V1_JOB_FIELDS = (
    "variant", "backend", "seed", "repeat", "requested_device", "dataset", "settings",
    "epochs", "batch_size",
)  # fmt: skip


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 run (as decoded JSON) in schema 2: each record's identity becomes its job.

    Schema 1 kept the identity in loose record fields, the train/test limits, thread count and
    determinism switch in the run's config, and the dataset digests in its environment. A
    record that never started said the requested device (e.g. `auto`) where a finished one
    said where it ran; the requested one becomes the job's, the resolved one stays the record's.
    Raises ValueError on a shape no schema-1 file had.
    """
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    config = data["config"] if isinstance(data.get("config"), dict) else {}
    env = data["environment"] if isinstance(data.get("environment"), dict) else {}
    digests = env.get("dataset_digests")
    digest = dataset_digest(digests) if isinstance(digests, dict) else ""
    run_settings = {
        "train_limit": config.get("train_limit"),
        "test_limit": config.get("test_limit"),
        "threads": config.get("threads"),
        "op_determinism": bool(config.get("check_determinism", False)),
    }

    def job(item: Any, where: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected object")
        settings = item["settings"] if isinstance(item.get("settings"), dict) else {}
        settings = {**settings, **run_settings}
        for name in ("epochs", "batch_size"):
            if item.get(name) is not None:
                settings.setdefault(name, item[name])
        return {
            "variant": item.get("variant"),
            "backend": item.get("backend"),
            "device": item.get("requested_device") or item.get("device"),
            "seed": item.get("seed"),
            "repeat": item.get("repeat", 0),
            "dataset": item.get("dataset", "mnist"),
            "dataset_digest": digest,
            "settings": settings,
        }

    records = []
    for i, r in enumerate(data.get("records") or []):
        new = {k: v for k, v in r.items() if k not in _V1_JOB_FIELDS} if isinstance(r, dict) else r
        new["job"] = job(r, f"records[{i}]")
        if new.get("device") not in ("cpu", "gpu"):
            new["device"] = None  # never started: v1 wrote the requested device here
        records.append(new)
    pending = [job(p, f"pending[{i}]") for i, p in enumerate(data.get("pending") or [])]
    return {**data, "schema_version": SCHEMA_VERSION, "records": records, "pending": pending}


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


def run_files_in(folder: Path) -> list[Path]:
    """`run_file_names_in`, as paths."""
    return [Path(name) for name in run_file_names_in(folder)]


def run_file_names_in(folder: Path) -> list[str]:
    """The `*.json` files under `folder`, sorted as paths are, leaving out hidden folders (a
    name starting with `.`) inside it: a `baseline update` stages its run in one until the run
    is complete. Listed with `os.scandir`, as `Path.rglob` would list them (no link to a folder
    followed, an unreadable folder passed over) without a `stat` per file or walking hidden
    folders (10,000 files: 0.05 s instead of 0.5 s)."""
    found: list[tuple[tuple[str, ...], str]] = []
    todo: list[tuple[str, tuple[str, ...]]] = [(str(folder), ())]
    while todo:
        where, parts = todo.pop()
        try:
            entries = list(os.scandir(where))
        except PermissionError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir() and not entry.is_symlink()
            except OSError:
                is_dir = False
            if is_dir and not entry.name.startswith("."):
                todo.append((entry.path, (*parts, entry.name)))
            if entry.name.endswith(".json"):
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        found.append(((*parts, entry.name), entry.path))
    return [path for _, path in sorted(found)]


def load_run(path: str | Path, raw: bytes | None = None) -> RunFile:
    """Read and validate one run file: its types (`_decode_run`), then what the schema cannot
    say (`check_consistency`). `raw`: its bytes, where the caller has read them already.

    Raises:
        UserError: missing, unreadable, not JSON, not a run file this version understands, or
            inconsistent; the message names the file and the field.
    """
    run = _decode_run(Path(path), raw)
    try:
        check_consistency(run)
    except ValueError as exc:
        raise UserError(f"{path}: inconsistent run file ({exc})") from None
    return run


def _decode_run(path: Path, raw: bytes | None = None) -> RunFile:
    """Read one run file and check its types.

    msgspec parses and type-checks in one pass, in C, straight into the dataclasses: about
    three times as fast as parsing to dicts and checking them in Python (`report` reads 1,000
    files in about a second). It is strict: NaN, infinities (e.g. 1e999), a bool for a number,
    and invalid UTF-8 are refused. Fields this version does not know are ignored. A `running`
    run's journal (its records since it last started) is folded in (`replay_journal`).

    Raises:
        UserError: missing, unreadable, not JSON, or not a run file this version understands.
    """
    import msgspec

    path = Path(path)
    try:
        if raw is None:
            raw = files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run file")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    decoder, envelope = _decoders()
    try:
        run = decoder.decode(raw)
        if run.schema_version != SCHEMA_VERSION:
            _check_version(run.schema_version)
            raise ValueError(
                f"schema_version {run.schema_version} with schema {SCHEMA_VERSION} records"
            )
        return replay_journal(run, path) if run.status == "running" else run  # UserError only
    except msgspec.ValidationError as exc:
        reason = _explain(exc)
        try:  # a newer version explains a mismatch best; an older one is migrated
            version = envelope.decode(raw).schema_version
            _check_version(version)
        except ValueError as bad:  # msgspec's errors are ValueErrors too
            reason = _explain(bad) if "schema_version" in str(bad) else reason
        except RecursionError:
            pass
        else:
            if version < SCHEMA_VERSION:
                try:
                    return RunFile.from_dict(msgspec.json.decode(raw))
                except ValueError as old:
                    reason = f"schema {version}: {old}"
        raise UserError(f"{path}: not a mnist-bench run file ({reason})") from None
    except msgspec.DecodeError as exc:
        if not _is_utf8(raw):  # msgspec 0.23 says so as a DecodeError, 0.22 as a UnicodeDecodeError
            raise UserError(f"{path}: unreadable (not UTF-8 text)") from None
        reason = str(exc).removeprefix("JSON is malformed: ")
        raise UserError(f"{path}: malformed JSON ({reason})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: unreadable (not UTF-8 text)") from None
    except ValueError as exc:  # the version
        raise UserError(f"{path}: not a mnist-bench run file ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: malformed JSON (nested too deeply)") from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ------------------------------------------------------------------------------ consistency
# What the types cannot say: values in range, and fields that agree with each other. Readers of
# a loaded run (report, compare, check, --resume, the time estimate) rely on it.
RANGES: dict[str, tuple[float, float]] = {
    **{m.name: (m.low, m.high) for m in METRICS},
    "wall_seconds": (0.0, MAX_VALUE),  # not a metric: the job's own wall time
    "steady_seconds_per_1k": (0.0, MAX_VALUE),  # what train_samples_per_second comes from
}  # a record's numbers; each list item too
ITEM_RANGES = {
    "epoch_seconds": (0.0, MAX_VALUE),
    "accuracy_curve": (0.0, 1.0),
    "loss_curve": (-MAX_VALUE, MAX_VALUE),
    "window_seconds": (0.0, MAX_VALUE),
    "window_samples": (0.0, MAX_VALUE),
    "steady_interval": (0.0, MAX_VALUE),
    "epoch_cpu_seconds": (0.0, MAX_VALUE),
}
COUNTS = (
    "params", "train_samples", "test_samples", "diverged_at_epoch", "flops_per_train_sample",
    "flops_per_infer_sample", "warmup_windows",
)  # fmt: skip
LATENCY_KEYS = ("p50", "p95", "p99")  # what `latency_ms` holds (milliseconds)
# Environment blocks readers look into (machine labels, class names, commits).
ENVIRONMENT_SHAPES = {"cpu": dict, "git": dict, "dataset": dict, "backends": dict, "gpus": list}


def check_consistency(run: RunFile) -> None:
    """Raise ValueError naming the first field (`records[2].confusion_matrix[3]: ...`) that is
    out of range or disagrees with another: negative times, counts or rates, an accuracy
    outside 0..1, batch-1 latencies without their percentiles, a confusion matrix that is not
    square or does not sum to `test_samples`, a misclassified digit outside the test set or
    the classes, an environment block of the wrong shape. A job recorded twice is no
    inconsistency: readers count it as a repeat of its seed."""
    env = run.environment
    for name, kind in ENVIRONMENT_SHAPES.items():
        if env.get(name) is not None and not isinstance(env[name], kind):
            want = "object" if kind is dict else "array"
            raise ValueError(f"environment.{name}: expected {want}, got {_json_type(env[name])}")
    names = (env.get("dataset") or {}).get("class_names")
    if names is not None and not isinstance(names, list):
        raise ValueError(
            f"environment.dataset.class_names: expected array, got {_json_type(names)}"
        )
    for i, record in enumerate(run.records):
        _check_record(record, f"records[{i}]")
    for backend, cost in run.determinism_cost.items():
        for name in ("steady_seconds_off", "steady_seconds_on", "ratio", "pairs"):
            value = getattr(cost, name)
            if not 0 < value <= MAX_VALUE:
                raise ValueError(
                    f"determinism_cost.{backend}.{name}: {value!r} is outside 0..{MAX_VALUE:g}"
                )
        if not 0 <= cost.noisy_pairs <= cost.pairs:
            raise ValueError(
                f"determinism_cost.{backend}.noisy_pairs: {cost.noisy_pairs} is outside "
                f"0..{cost.pairs} (its pairs)"
            )


def make_writable(r: Record) -> tuple[list[str], str | None]:
    """Fit a record just made to be written and read back, before it reaches a file.

    Each number of `RANGES` outside its range (NaN and infinity included) is dropped to None.
    Returns what was dropped (`name value` each) and what is wrong still, if anything (a list
    item, a matrix, a value JSON cannot hold): such a record cannot be saved as measured.
    """
    dropped = []
    for name, (low, high) in RANGES.items():
        value = getattr(r, name)
        if value is not None and not (isinstance(value, int | float) and low <= value <= high):
            dropped.append(f"{name} {_short(value)}")
            setattr(r, name, None)
    try:
        _check_record(r, "record")
        json.dumps(r.to_dict(), allow_nan=False)
    except (ValueError, TypeError) as exc:
        return dropped, str(exc)
    return dropped, None


def _check_record(r: Record, where: str) -> None:
    for name, (low, high) in RANGES.items():
        value = getattr(r, name)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{where}.{name}: {value!r} is outside {low:g}..{high:g}")
    for name, (low, high) in ITEM_RANGES.items():
        for j, value in enumerate(getattr(r, name)):
            if value is not None and not low <= value <= high:
                raise ValueError(f"{where}.{name}[{j}]: {value!r} is outside {low:g}..{high:g}")
    for name in COUNTS:
        value = getattr(r, name)
        if value is not None and value < 0:
            raise ValueError(f"{where}.{name}: {value} is negative")
    if len(r.window_samples) != len(r.window_seconds):
        raise ValueError(
            f"{where}.window_samples: {len(r.window_samples)} counts for "
            f"{len(r.window_seconds)} windows"
        )
    if r.steady_interval and not (
        len(r.steady_interval) == 2 and r.steady_interval[0] <= r.steady_interval[1]
    ):
        raise ValueError(f"{where}.steady_interval: {_short(r.steady_interval)} is not [low, high]")
    if r.latency_ms is not None:
        for key in LATENCY_KEYS:
            value = r.latency_ms.get(key)
            if value is None or not 0 <= value <= MAX_VALUE:
                raise ValueError(
                    f"{where}.latency_ms.{key}: {_short(value)} is not a latency (0..{MAX_VALUE:g})"
                )
    matrix, tested = r.confusion_matrix, r.test_samples
    if matrix is not None:
        if not matrix:
            raise ValueError(f"{where}.confusion_matrix: empty")
        for j, row in enumerate(matrix):
            if len(row) != len(matrix):
                raise ValueError(
                    f"{where}.confusion_matrix[{j}]: {len(row)} counts in a "
                    f"{len(matrix)}-class matrix"
                )
            if min(row) < 0:
                raise ValueError(f"{where}.confusion_matrix[{j}]: a negative count")
        total = sum(map(sum, matrix))
        if tested is not None and total != tested:
            raise ValueError(
                f"{where}.confusion_matrix: counts sum to {total}, test_samples is {tested}"
            )
        tested = total
    if r.predicted_labels is not None and (
        tested is None or len(r.predicted_labels) != packed_length(tested)
    ):
        raise ValueError(
            f"{where}.predicted_labels: {len(r.predicted_labels)} characters do not hold "
            f"{tested} packed labels ({packed_length(tested or 0)} would)"
        )
    for j, entry in enumerate(r.misclassified):
        if not (
            len(entry) == 3
            and min(entry) >= 0
            and (tested is None or entry[0] < tested)
            and (matrix is None or max(entry[1:]) < len(matrix))
        ):
            raise ValueError(
                f"{where}.misclassified[{j}]: {_short(entry)} is not [test index, true class, "
                "predicted class] within the test set and its classes"
            )


def _json_type(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float"}
    return kinds.get(type(value), "null")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------- predicted labels
# Four bits a label, two a byte (the first in the high half), then base64: 10,000 labels in
# 6,668 characters of plain JSON text. An odd count ends with the half-byte PAD.
LABEL_BITS = 4
PAD = 0xF
MAX_LABEL = PAD - 1  # classes 0..14


def packed_length(count: int) -> int:
    """Characters of `count` packed labels."""
    return 4 * -(-((count + 1) // 2) // 3)


def pack_labels(labels: Any) -> str:
    """Class labels (integers 0..14, any sequence or NumPy array) as text.

    Raises:
        ValueError: a label outside 0..14.
    """
    import base64

    import numpy as np

    values = np.asarray(labels, dtype=np.int64).ravel()
    if values.size and (values.min() < 0 or values.max() > MAX_LABEL):
        raise ValueError(f"labels must be 0..{MAX_LABEL} to pack")
    if values.size % 2:
        values = np.append(values, PAD)
    packed = (values[0::2] << LABEL_BITS) | values[1::2]
    return base64.b64encode(packed.astype(np.uint8).tobytes()).decode("ascii")


def unpack_labels(text: str, count: int) -> Any:
    """The `count` labels `pack_labels` packed into `text`, as a NumPy uint8 array.

    Raises:
        ValueError: not base64, or not `count` labels.
    """
    import base64
    import binascii

    import numpy as np

    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not base64 text") from None
    if len(raw) != (count + 1) // 2:
        raise ValueError(f"{2 * len(raw)} half-bytes do not hold {count} labels")
    packed = np.frombuffer(raw, dtype=np.uint8)
    labels = np.empty(2 * len(packed), dtype=np.uint8)
    labels[0::2], labels[1::2] = packed >> LABEL_BITS, packed & PAD
    if (count % 2 and labels[-1] != PAD) or (labels[:count] == PAD).any():
        raise ValueError("a label is the padding value")
    return labels[:count]


# ------------------------------------------------------------------------------ the journal
# Written by `mnist_bench.runfile.journal` while a run is in progress; read here with its run file.
JOURNAL_SUFFIX = ".journal"


def journal_path(run_path: Path) -> Path:
    """The journal of the run file at `run_path`: `RUN.json.journal`."""
    return run_path.with_name(run_path.name + JOURNAL_SUFFIX)


def _warn(message: str) -> None:
    print(f"mnist-bench: warning: {escape.terminal(message)}", file=sys.stderr)


@dataclass
class _Entry:
    record: Record
    environment: dict[str, Any] | None = None


@functools.cache
def _decoder() -> Any:
    import msgspec

    return msgspec.json.Decoder(_Entry)


def replay_journal(run: RunFile, run_path: Path, warn: Callable[[str], None] = _warn) -> RunFile:
    """Fold the journal beside `run_path`, if any, into `run` in memory: its records that `run`
    lacks (by key), and the last environment block it saved. Returns `run`.

    Raises:
        UserError: the journal is unreadable, or a line other than the last is not an entry.
    """
    path = journal_path(run_path)
    try:
        raw = files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run journal")
    except FileNotFoundError:
        return run
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    lines = raw.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    seen = {r.slot for r in run.records}
    decoder = _decoder()
    for number, line in enumerate(lines, 1):
        try:
            entry = decoder.decode(line)
        except (ValueError, RecursionError) as exc:  # msgspec's errors are ValueErrors
            if number == len(lines):  # the write a crash cut short
                warn(f"{path}: last line is incomplete (a crash mid-write?); ignored")
                break
            reason = _explain(exc) if isinstance(exc, ValueError) else "nested too deeply"
            raise UserError(f"{path}: line {number} is not a journal entry ({reason})") from None
        if entry.environment is not None:
            run.environment = entry.environment
        if entry.record.slot not in seen:
            seen.add(entry.record.slot)
            run.records.append(entry.record)
    return run
