"""What to run: training settings per variant and the run configuration, as frozen dataclasses.

Each field's metadata carries its help text; `bench.cli` derives the `run` options from it, so
an option and its documentation live in exactly one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
SCHEDULES = ("constant", "cosine", "one-cycle")
DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tensorflow", "jax", "torch")


def _opt(help: str, **cli: Any) -> dict[str, Any]:
    return {"help": help, "cli": cli}


def int_list(text: str) -> tuple[int, ...]:
    """Parse "0,1,2" (argparse type)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def float_list(text: str) -> tuple[float, ...]:
    """Parse "0.97,0.98" (argparse type)."""
    return tuple(float(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class TrainSettings:
    """How one variant is trained; registered per variant, overridable per run."""

    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float | None = None  # None: the optimizer's Keras default
    schedule: str = "constant"

    def override(self, **changes: Any) -> TrainSettings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))


@dataclass(frozen=True)
class RunConfig:
    """Everything `mnist-bench run` needs; stored verbatim in the run file."""

    variants: tuple[str, ...] = field(
        default=(),
        metadata=_opt(
            "variant to run; repeat or comma-separate for several; `all` for every one (default: "
            "the seed notebook's three: single-dense, two-dense, flatten-dense; see"
            " `mnist-bench list`)",
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
            flags=("--device",),
            action="append",
            choices=DEVICES,
        ),
    )
    seeds: tuple[int, ...] = field(
        default=(0,),
        metadata=_opt(
            "comma-separated seeds, one record each, e.g. 0,1,2 (default: 0)",
            type=int_list,
            metavar="LIST",
            flags=("--seeds", "--seed"),
        ),
    )
    epochs: int | None = field(
        default=None, metadata=_opt("override every variant's epochs", type=int, metavar="N")
    )
    batch_size: int | None = field(
        default=None, metadata=_opt("override every variant's batch size", type=int, metavar="N")
    )
    optimizer: str | None = field(
        default=None, metadata=_opt("override the optimizer", choices=OPTIMIZERS)
    )
    learning_rate: float | None = field(
        default=None,
        metadata=_opt(
            "override the learning rate (default: the optimizer's Keras default)",
            type=float,
            metavar="LR",
        ),
    )
    schedule: str | None = field(
        default=None, metadata=_opt("learning-rate schedule", choices=SCHEDULES)
    )
    data: str = field(
        default="mnist",
        metadata=_opt(
            "dataset: mnist (bundled), fashion-mnist, a Keras-layout .npz file, or an IDX folder",
            metavar="DATA",
        ),
    )
    train_limit: int | None = field(
        default=None, metadata=_opt("use only the first N training samples", type=int, metavar="N")
    )
    test_limit: int | None = field(
        default=None, metadata=_opt("use only the first N test samples", type=int, metavar="N")
    )
    results_dir: str = field(
        default="results/runs",
        metadata=_opt("folder for the run's JSON file and figures", metavar="DIR"),
    )
    targets: tuple[float, ...] = field(
        default=(0.97, 0.98, 0.99),
        metadata=_opt(
            "comma-separated test accuracies for time-to-accuracy", type=float_list, metavar="LIST"
        ),
    )
    infer_batch_sizes: tuple[int, ...] = field(
        default=(1, 32, 1024),
        metadata=_opt(
            "comma-separated batch sizes for the inference throughput sweep",
            type=int_list,
            metavar="LIST",
        ),
    )
    check_determinism: bool = field(
        default=False,
        metadata=_opt(
            "train every configuration twice in separate processes, with op determinism "
            "switched on, and record whether weights and predictions came out bit-identical",
            action="store_true",
        ),
    )
    record_timeout: float | None = field(
        default=None,
        metadata=_opt(
            "seconds one record may take before its worker is killed "
            "(default: estimated from the variant's FLOPs and epochs)",
            type=float,
            metavar="S",
        ),
    )
    threads: int | None = field(
        default=None,
        metadata=_opt(
            "intra-op thread count for every backend (default: the backend's own choice)",
            type=int,
            metavar="N",
        ),
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
            metavar="FILE.toml",
        ),
    )

    def settings_overrides(self) -> dict[str, Any]:
        """Settings fixed for the whole run (suite [settings] table, then command line)."""
        return {name: getattr(self, name) for name in SETTINGS_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        if "device" in data and "devices" not in data:  # written before suites existed
            kwargs["devices"] = (data["device"],)
        return cls(**kwargs)

    @property
    def results_path(self) -> Path:
        return Path(self.results_dir)
