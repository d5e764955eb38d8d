"""What to run: the training settings of one job and the run configuration, as frozen dataclasses
that validate themselves.

Each field's metadata carries its help text and its bounds. `mnist_bench.commands.run` derives the
`run` options from it and `plan.suite` the TOML schema, so an option, its documentation and its
checks live in exactly one place, and a bad value gives the same one-line message from a flag
or from a suite.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_bench.core.errors import UserError

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
SCHEDULES = ("constant", "cosine", "one-cycle")
DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tensorflow", "jax", "torch")
JIT_COMPILE = ("auto", "true", "false")  # Keras compile(jit_compile=...): "auto" is Keras's choice
DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
MAX_SEED = 2**32 - 1  # numpy's (and so keras.utils.set_random_seed's) seed range: 0 .. 2**32-1
MAX_JOBS = 10_000  # a day of training at 10 s a job; its run file (2.4 KB a record) is 24 MB
MAX_NAME = 255  # a variant's or dataset's name: a file name's own limit (NAME_MAX)
MAX_PATH = 4096  # a path: Linux's PATH_MAX


class ConfigError(UserError, ValueError):
    """A value out of range or of the wrong type; `name` is the field (a suite adds file:line)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _opt(help: str, check: dict[str, Any] | None = None, **cli: Any) -> dict[str, Any]:
    return {"help": help, "cli": cli, "check": check or {}}


def int_list(text: str) -> tuple[int, ...]:
    """Parse "0,1,2" (argparse type)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def float_list(text: str) -> tuple[float, ...]:
    """Parse "0.97,0.98" (argparse type)."""
    return tuple(float(part) for part in text.split(",") if part.strip())


# ------------------------------------------------------------------------------- validation
_KINDS = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
}


def _describe(check: dict[str, Any]) -> str:
    """'a finite number > 0', 'an integer >= 1', 'one of adam, sgd'..."""
    if "choices" in check:
        return "one of " + ", ".join(check["choices"])
    text = _KINDS[check["kind"]][0]
    if check["kind"] == "number":
        text = "a finite number"
    bounds = []
    if "min" in check:
        bounds.append(f">= {check['min']}")
    if "above" in check:
        bounds.append(f"> {check['above']}")
    if "max" in check:
        bounds.append(f"<= {check['max']}")
    return text + (" " + " and ".join(bounds) if bounds else "")


def check_value(name: str, value: Any, check: dict[str, Any]) -> None:
    """Raise `ConfigError` unless `value` satisfies `check` (a field's `check` metadata).

    A check holds `kind` (int, number, str: never blank, bool), optional `min` / `above` /
    `max` bounds, `choices`, `optional` (None allowed) and `list` (a non-empty tuple of such
    values, no value twice).
    """
    if value is None:
        if check.get("optional"):
            return
        raise ConfigError(name, f"{name} must be {_describe(check)} (got nothing)")
    if check.get("list"):
        if not isinstance(value, tuple | list) or not (value or check.get("empty")):
            raise ConfigError(name, f"{name} must be a non-empty list, each {_describe(check)}")
        seen: set[Any] = set()
        for item in value:
            _check_one(name, item, check, each=True)
            if item in seen:
                raise ConfigError(name, f"{name} lists {item!r} twice")
            seen.add(item)
        return
    _check_one(name, value, check)


def _check_one(name: str, value: Any, check: dict[str, Any], each: bool = False) -> None:
    kind = check.get("kind", "str")
    ok = _KINDS[kind][1](value)
    if ok and kind == "number":
        ok = math.isfinite(value)
    if ok and kind == "str" and not value.strip():  # a name or a path, never blank
        must = "must each be" if each else "must be"
        raise ConfigError(name, f"{name} {must} a non-empty string (got {value!r})")
    if ok and "choices" in check and value not in check["choices"]:
        valid = ", ".join(check["choices"])
        raise ConfigError(name, f"unknown {name.removesuffix('s')} {value!r}; valid: {valid}")
    if ok and kind == "str" and len(value) > check.get("max_length", math.inf):
        must = "must each be" if each else "must be"
        raise ConfigError(
            name, f"{name} {must} at most {check['max_length']} characters (got {len(value):,})"
        )
    if ok and kind in ("int", "number"):
        ok = (
            value >= check.get("min", -math.inf)
            and value > check.get("above", -math.inf)
            and value <= check.get("max", math.inf)
        )
    if not ok:
        must = "must each be" if each else "must be"
        raise ConfigError(name, f"{name} {must} {_describe(check)} (got {value!r})")


def _validate(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check:
            check_value(f.name, getattr(obj, f.name), check)


def checks(cls: type) -> dict[str, dict[str, Any]]:
    """Field name -> its check, for every validated field of `cls` (the suite schema)."""
    return {f.name: f.metadata["check"] for f in dataclasses.fields(cls) if f.metadata.get("check")}


# --------------------------------------------------------------------------------- settings
def _setting(default: Any, help: str, **check: Any) -> Any:
    return field(default=default, metadata={"help": help, "check": check})


_VALID_SETTINGS: set[tuple[tuple[Any, ...], tuple[type, ...]]] = (
    set()
)  # TrainSettings checked already


@dataclass(frozen=True)
class TrainSettings:
    """How one job trains: everything besides variant, backend, device and seed that changes
    what a record measures. Registered per variant, overridable per run or suite grid point."""

    epochs: int = _setting(5, "training epochs", kind="int", min=1, max=10_000)
    batch_size: int = _setting(32, "training batch size", kind="int", min=1, max=1_000_000)
    optimizer: str = _setting("adam", "optimizer", kind="str", choices=OPTIMIZERS)
    learning_rate: float | None = _setting(
        None, "learning rate (None: the optimizer's Keras default)",
        kind="number", above=0, optional=True,
    )  # fmt: skip
    schedule: str = _setting("constant", "learning-rate schedule", kind="str", choices=SCHEDULES)
    train_limit: int | None = _setting(
        None, "only the first N training samples", kind="int", min=1, optional=True
    )
    test_limit: int | None = _setting(
        None, "only the first N test samples", kind="int", min=1, optional=True
    )
    threads: int | None = _setting(
        None, "intra-op threads (default on a CPU: usable cores - 1; docs/methodology.md)",
        kind="int", min=1, max=1024, optional=True,
    )  # fmt: skip
    op_determinism: bool = _setting(False, "the backend's op-determinism switches", kind="bool")
    jit_compile: str = _setting(
        "auto", "Keras compile(jit_compile=...): XLA on TensorFlow and JAX, torch.compile on "
        "PyTorch; auto: Keras's choice (the record says what it resolved to)",
        kind="str", choices=JIT_COMPILE,
    )  # fmt: skip
    dtype_policy: str = _setting(
        "float32", "Keras dtype policy: float32, or mixed precision (float16 or bfloat16 "
        "compute, float32 weights)",
        kind="str", choices=DTYPE_POLICIES,
    )  # fmt: skip
    steps_per_execution: int = _setting(
        1, "Keras compile(steps_per_execution=...): training steps per compiled call",
        kind="int", min=1, max=100_000,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.learning_rate, int) and not isinstance(self.learning_rate, bool):
            object.__setattr__(self, "learning_rate", float(self.learning_rate))
        # Settings seen valid before are not checked again: a reader decodes thousands of
        # records that share a handful of settings (the run index's warm read). Keyed by type
        # and value, so 1, 1.0 and True stay apart.
        try:
            values = tuple(self.__dict__.values())
            key = (values, tuple(map(type, values)))
            if key in _VALID_SETTINGS:
                return
        except TypeError:  # an unhashable value: checked, and refused, below
            key = None
        _validate(self)
        if key is not None:
            if len(_VALID_SETTINGS) >= 4096:
                _VALID_SETTINGS.clear()
            _VALID_SETTINGS.add(key)

    def override(self, **changes: Any) -> TrainSettings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))
# Settings a worker process applies once, before its framework starts: jobs differing in them
# cannot share a worker.
PROCESS_SETTINGS = ("threads", "op_determinism")


def _override(name: str, help: str, **cli: Any) -> Any:
    """A run-wide override of the setting `name`: its check, with None meaning "not given"."""
    check = {**TrainSettings.__dataclass_fields__[name].metadata["check"], "optional": True}
    if "choices" in check:
        cli.setdefault("choices", check["choices"])
    return field(default=None, metadata=_opt(help, check, **cli))


@dataclass(frozen=True)
class RunConfig:
    """Everything `mnist-bench run` needs; stored verbatim in the run file.

    Validates itself on construction: a value of the wrong type, out of range, not finite, or a
    seed listed twice raises `ConfigError` (a `UserError`: one line, exit 2).
    """

    variants: tuple[str, ...] = field(
        default=(),
        metadata=_opt(
            "variant to run: a name (see `mnist-bench list`), MODULE:FUNCTION or "
            "path/to/file.py:FUNCTION; repeat or comma-separate for several; `all` for every "
            "built-in one (default: the seed notebook's three: single-dense, two-dense, "
            "flatten-dense)",
            {"kind": "str", "list": True, "empty": True, "max_length": MAX_NAME},
            flags=("--variant", "-v"),
            action="append",
            metavar="NAME",
        ),
    )
    backends: tuple[str, ...] = field(
        default=(),
        metadata=_opt(
            "Keras backend: tensorflow, jax or torch; repeat or comma-separate for several "
            "(default: every installed one)",
            {"kind": "str", "list": True, "empty": True, "choices": BACKENDS},
            flags=("--backend", "-b"),
            action="append",
            metavar="NAME",
        ),
    )
    devices: tuple[str, ...] = field(
        default=("auto",),
        metadata=_opt(
            "where to train: cpu, gpu, or auto (GPU where the backend sees one, else CPU); "
            "repeat for several",
            {"kind": "str", "list": True, "choices": DEVICES},
            flags=("--device",),
            action="append",
            choices=DEVICES,
        ),
    )
    seeds: tuple[int, ...] = field(
        default=(0,),
        metadata=_opt(
            f"comma-separated seeds, one record each, e.g. 0,1,2 (default: 0); each in "
            f"0..{MAX_SEED}, none twice",
            {"kind": "int", "list": True, "min": 0, "max": MAX_SEED},
            type=int_list,
            metavar="LIST",
            flags=("--seeds", "--seed"),
        ),
    )
    epochs: int | None = _override(
        "epochs", "override every variant's epochs", type=int, metavar="N"
    )
    batch_size: int | None = _override(
        "batch_size", "override every variant's batch size", type=int, metavar="N"
    )
    optimizer: str | None = _override("optimizer", "override the optimizer")
    learning_rate: float | None = _override(
        "learning_rate",
        "override the learning rate (default: the optimizer's Keras default)",
        type=float,
        metavar="LR",
    )
    schedule: str | None = _override("schedule", "learning-rate schedule")
    data: str = field(
        default="mnist",
        metadata=_opt(
            "dataset: mnist (bundled), fashion-mnist (apt-get install dataset-fashion-mnist), "
            "a Keras-layout .npz file, or an IDX folder",
            {"kind": "str", "max_length": MAX_PATH},
            metavar="DATA",
        ),
    )
    train_limit: int | None = _override(
        "train_limit", "use only the first N training samples", type=int, metavar="N"
    )
    test_limit: int | None = _override(
        "test_limit", "use only the first N test samples", type=int, metavar="N"
    )
    results_dir: str = field(
        default="results/runs",
        metadata=_opt(
            "folder for the run's JSON file and figures",
            {"kind": "str", "max_length": MAX_PATH},
            metavar="DIR",
        ),
    )
    targets: tuple[float, ...] = field(
        default=(0.97, 0.98, 0.99),
        metadata=_opt(
            "comma-separated test accuracies for time-to-accuracy, each in (0, 1]",
            {"kind": "number", "list": True, "above": 0, "max": 1},
            type=float_list,
            metavar="LIST",
        ),
    )
    infer_batch_sizes: tuple[int, ...] = field(
        default=(1, 32, 1024),
        metadata=_opt(
            "comma-separated batch sizes for the inference throughput sweep",
            {"kind": "int", "list": True, "min": 1, "max": 1_000_000},
            type=int_list,
            metavar="LIST",
        ),
    )
    check_determinism: bool = field(
        default=False,
        metadata=_opt(
            "train every configuration twice in separate processes, with op determinism "
            "switched on, and record whether weights and predictions came out bit-identical",
            {"kind": "bool"},
            action="store_true",
        ),
    )
    record_timeout: float | None = field(
        default=None,
        metadata=_opt(
            "cap on the seconds one record may take before its worker is killed (default: no "
            "cap; a record is killed only when it stops making progress: no finished epoch "
            "for 10x its slowest epoch, at least 180 s)",
            {"kind": "number", "above": 0, "optional": True},
            type=float,
            metavar="S",
        ),
    )
    threads: int | None = _override(
        "threads",
        "intra-op thread count for every backend (default without a GPU: one fewer than the "
        "usable cores, TensorFlow's inter-op pool 1, JAX one thread on 2 cores; "
        "MNIST_BENCH_FRAMEWORK_THREADS=1: each framework's own pools)",
        type=int,
        metavar="N",
    )
    jit_compile: str | None = _override(
        "jit_compile",
        "compile with XLA (TensorFlow, JAX) or torch.compile (PyTorch): auto (Keras's choice, "
        "the default), true or false",
    )
    dtype_policy: str | None = _override(
        "dtype_policy", "Keras dtype policy (default float32; mixed_float16, mixed_bfloat16)"
    )
    steps_per_execution: int | None = _override(
        "steps_per_execution",
        "training steps per compiled call (default 1; PyTorch takes only 1)",
        type=int,
        metavar="N",
    )

    grid: tuple[dict[str, Any], ...] = field(
        default=({},),
        metadata={"help": "settings overrides, one per grid point (from a suite's [grid] table)"},
    )
    suite: str | None = field(
        default=None,
        metadata=_opt(
            "a TOML suite file: variants x backends x devices x seeds x settings grid "
            "(see suites/); options given on the command line override it",
            {"kind": "str", "optional": True, "max_length": MAX_PATH},
            metavar="FILE.toml",
        ),
    )
    shard: str | None = field(
        default=None,
        metadata=_opt(
            "run only share I of N of the grid (1-based, e.g. 2/3): the same split in every "
            "process, balanced by estimated time, for a CI matrix; join the shards' run files "
            "with `mnist-bench merge`",
            {"kind": "str", "optional": True, "max_length": 32},
            metavar="I/N",
        ),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # lists from JSON or TOML become tuples
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if isinstance(self.learning_rate, int) and not isinstance(self.learning_rate, bool):
            object.__setattr__(self, "learning_rate", float(self.learning_rate))
        # Counted before anything is checked item by item; an empty list is the defaults,
        # counted exactly when the jobs are planned (`runner.expand_jobs`).
        lists: dict[str, object]
        lists = {"variants": self.variants, "backends": self.backends, "devices": self.devices}
        lists.update({"seeds": self.seeds, "grid points": self.grid})
        counts = {k: len(v) or 1 if isinstance(v, tuple) else 1 for k, v in lists.items()}
        counts["passes"] = 3 if self.check_determinism is True else 1  # --check-determinism
        check_job_count(counts)
        _validate(self)
        if self.shard is not None:  # kept as "I/N", the form the run file shows
            object.__setattr__(self, "shard", "{}/{}".format(*parse_shard(self.shard)))
        if not self.grid:
            object.__setattr__(self, "grid", ({},))
        for point in self.grid:
            self.settings_for(TrainSettings(), point)  # every grid point makes valid settings

    def settings_overrides(self) -> dict[str, Any]:
        """Settings fixed for the whole run (suite [settings] table, then command line)."""
        out = {name: getattr(self, name) for name in SETTINGS_FIELDS if hasattr(self, name)}
        if self.check_determinism:
            out["op_determinism"] = True
        return out

    def settings_for(self, defaults: TrainSettings, point: dict[str, Any]) -> TrainSettings:
        """A variant's `defaults`, then one grid `point`, then the run-wide overrides."""
        if not isinstance(point, dict):
            raise ConfigError("grid", f"grid points must be tables of settings (got {point!r})")
        unknown = sorted(set(point) - set(GRID_FIELDS))
        if unknown:
            raise ConfigError("grid", f"grid has unknown setting {unknown[0]!r}; valid: "
                              + ", ".join(GRID_FIELDS))  # fmt: skip
        return defaults.override(**point).override(**self.settings_overrides())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "device" in data and "devices" not in data:  # written before suites existed
            kwargs["devices"] = (data["device"],)
        return cls(**kwargs)

    @property
    def results_path(self) -> Path:
        return Path(self.results_dir)


GRID_FIELDS = tuple(name for name in SETTINGS_FIELDS if name != "op_determinism")


def check_job_count(counts: dict[str, int]) -> None:
    """Refuse a run whose grid plans more than `MAX_JOBS` jobs, from the lengths of its lists
    (`{"variants": 3, "seeds": 5}`), before any job is built.

    Raises:
        ConfigError: their product is over `MAX_JOBS`.
    """
    total = math.prod(counts.values())
    if total > MAX_JOBS:
        shape = " x ".join(f"{n:,} {name}" for name, n in counts.items() if n != 1)
        raise ConfigError(
            "jobs",
            f"the grid makes {total:,} jobs ({shape}); a run plans at most {MAX_JOBS:,}: "
            "split it into several runs",
        )


MAX_SHARDS = 10_000


def parse_shard(text: str) -> tuple[int, int]:
    """`2/3` -> (2, 3): share I of N, 1 <= I <= N.

    Raises:
        ConfigError: not two integers I/N in range.
    """
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", text)
    if match is None:
        raise ConfigError("shard", f"shard must be I/N, e.g. 2/3 (got {text!r})")
    i, n = int(match[1]), int(match[2])
    if not 1 <= n <= MAX_SHARDS:
        raise ConfigError("shard", f"shard count must be 1..{MAX_SHARDS} (got {text!r})")
    if not 1 <= i <= n:
        raise ConfigError("shard", f"shard {text!r}: I must be 1..{n} (shards count from 1)")
    return i, n
