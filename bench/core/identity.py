"""One identity for a configuration: the typed `Job`, its keys, and what "the same
configuration", "another seed" and "a repeat" mean.

Every module that pairs or groups records asks this one: the runner (what is done), the
determinism pairing, the aggregates, report rows, compare and check. Nothing else builds a key.

- The same configuration: equal `config_key`: dataset (name and digest), variant, backend,
  requested device, every training setting (epochs, batch size, optimizer, learning rate,
  schedule, train/test limits, threads, op determinism) and the model's digest (its
  architecture, `model_digest`). One row of a table. A job without a model digest (a run file
  written before digests, a record whose model was never built) matches any digest
  (`digest_filler`).
- Another seed: the same configuration, a different seed. Seeds are the samples that means,
  confidence intervals and Welch's test count.
- A repeat: the same configuration and seed again (the second process of `--check-determinism`,
  or the same job in another run file). Repeats are averaged per seed, never counted as seeds.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mnist_bench.core.config import (
    BACKENDS,
    DEVICES,
    MAX_NAME,
    MAX_SEED,
    SETTINGS_FIELDS,
    TrainSettings,
)

# The fields of a configuration, flattened, in the order they are shown.
CONFIG_FIELDS = (
    "variant", "backend", "device", "dataset", *SETTINGS_FIELDS, "dataset_digest", "model_digest",
)  # fmt: skip
# A model digest: 16 hex digits, or "" where unknown.
MODEL_DIGEST = re.compile(r"([0-9a-f]{16})?")
# How `differences` names a field where its name would say less.
_SHOWN_AS = {"model_digest": "model"}
# What `--match-on` may name: any configuration field.
MATCH_FIELDS = CONFIG_FIELDS


@dataclass(frozen=True)
class Job:
    """One record to make: a configuration and a seed (and which repeat of it).

    Attributes:
        variant: the registered model variant.
        backend: tensorflow, jax or torch.
        device: the device asked for: auto, cpu or gpu (the record says where it ran).
        seed: seeds Python, NumPy and the backend before the model is built.
        settings: how it trains (epochs, batch size, optimizer, limits, threads...).
        dataset: the dataset's name (mnist, fashion-mnist, a file's stem).
        dataset_digest: short SHA-256 over the full dataset's four arrays; "" when unknown.
        repeat: 0, or 1 for the second process of `--check-determinism`.
        model_digest: short SHA-256 of the model's architecture (`training.model_digest`),
            filled in by the worker once the model is built; "" in a planned job, and where
            unknown.
    """

    variant: str
    backend: str
    device: str
    seed: int
    settings: TrainSettings
    dataset: str = "mnist"
    dataset_digest: str = ""
    repeat: int = 0
    model_digest: str = ""

    def __post_init__(self) -> None:  # also run when a run file is decoded
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed {self.seed} is outside 0..{MAX_SEED}")
        if self.repeat < 0:
            raise ValueError(f"repeat {self.repeat} is negative")
        for name in ("variant", "dataset"):
            if len(getattr(self, name)) > MAX_NAME:
                raise ValueError(f"{name} name is over {MAX_NAME} characters")
        if not MODEL_DIGEST.fullmatch(self.model_digest):
            raise ValueError(f"model_digest {self.model_digest!r} is not 16 hex digits")

    @functools.cached_property
    def planned_key(self) -> tuple:
        """The configuration as planned: everything but the seed, the repeat and the model
        digest (known only once the worker has built the model)."""
        return (
            self.dataset,
            self.dataset_digest,
            self.variant,
            self.backend,
            self.device,
            self.settings,
        )

    @property
    def config_key(self) -> tuple:
        """The same configuration: everything but the seed and the repeat."""
        return (*self.planned_key, self.model_digest)

    @property
    def seed_key(self) -> tuple:
        """The same configuration and seed: records with this key are repeats of each other."""
        return (*self.config_key, self.seed)

    @property
    def key(self) -> tuple:
        """The job itself, as planned: one record per key in a run (its record's job adds the
        model digest)."""
        return (*self.planned_key, self.seed, self.repeat)

    def fields(self) -> dict[str, Any]:
        """The configuration's fields, flattened (`CONFIG_FIELDS`), seed and repeat left out."""
        flat = {
            "variant": self.variant,
            "backend": self.backend,
            "device": self.device,
            "dataset": self.dataset,
        }
        flat.update(dataclasses.asdict(self.settings))
        flat["dataset_digest"] = self.dataset_digest
        flat["model_digest"] = self.model_digest
        return flat

    def label(self) -> str:
        repeat = f" (repeat {self.repeat})" if self.repeat else ""
        return f"{self.backend} · {self.variant} · seed {self.seed}{repeat}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Build a job from JSON data, checking every field.

        Raises:
            ValueError: a missing field, a wrong type, or a value out of range.
        """
        import msgspec

        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None


def dataset_digest(digests: dict[str, str] | None) -> str:
    """One short digest for a dataset's per-array digests (x_train, y_train, x_test, y_test)."""
    if not digests:
        return ""
    text = ";".join(f"{k}={digests[k]}" for k in sorted(digests))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------ relations
def same_configuration(a: Job, b: Job) -> bool:
    return a.config_key == b.config_key


def another_seed(a: Job, b: Job) -> bool:
    return a.config_key == b.config_key and a.seed != b.seed


def a_repeat(a: Job, b: Job) -> bool:
    return a.seed_key == b.seed_key


def key_except(job: Job, *names: str) -> tuple:
    """The job's key (its configuration fields, seed and repeat) without the fields `names`:
    jobs with equal keys differ at most in those (`parity` pairs backends by it, the
    determinism cost runs with and without op determinism).

    Raises:
        ValueError: a name that is no field of a job.
    """
    flat = {**job.fields(), "seed": job.seed, "repeat": job.repeat}
    for name in names:
        if name not in flat:
            raise ValueError(f"unknown field {name!r}; valid: {', '.join(flat)}")
    return tuple(value for name, value in flat.items() if name not in names)


def same_except(a: Job, b: Job, *names: str) -> bool:
    """`a` and `b` are the same job but for the fields `names` (`"backend"`)."""
    return key_except(a, *names) == key_except(b, *names)


class HasJob(Protocol):
    job: Job


def digest_filler(jobs: Iterable[Job]) -> Callable[[Job], Job]:
    """A function that gives a job without a model digest the one digest the other `jobs` of
    its planned configuration have (a run file written before digests, a record that failed
    before its model was built), so that it matches them; where they have none or several,
    the job is returned as it is."""
    seen: dict[tuple, set[str]] = {}
    for job in jobs:
        if job.model_digest:
            seen.setdefault(job.planned_key, set()).add(job.model_digest)

    def fill(job: Job) -> Job:
        digests = seen.get(job.planned_key, ()) if not job.model_digest else ()
        if len(digests) != 1:
            return job
        return dataclasses.replace(job, model_digest=next(iter(digests)))

    return fill


def match_key(job: Job, on: Sequence[str] | None = None) -> tuple:
    """The key records are matched and grouped by: the full configuration, or only the fields
    named in `on` (`--match-on variant,backend,device`)."""
    if on is None:
        return job.config_key
    flat = job.fields()
    return tuple(flat[name] for name in on)


def check_match_fields(on: Iterable[str]) -> tuple[str, ...]:
    """`on` as a tuple of known fields, or ValueError naming the first unknown one."""
    names = tuple(dict.fromkeys(on))
    for name in names:
        if name not in MATCH_FIELDS:
            raise ValueError(f"unknown field {name!r}; valid: {', '.join(MATCH_FIELDS)}")
    if not names:
        raise ValueError("no field named")
    return names


def group(items: Iterable[HasJob], key: Callable[[Job], Any]) -> dict[Any, list]:
    """Items by `key(item.job)`, in order of first appearance."""
    out: dict[Any, list] = {}
    for item in items:
        out.setdefault(key(item.job), []).append(item)
    return out


def per_seed(items: Iterable[HasJob]) -> dict[int, list]:
    """Items by seed: each list holds the repeats of one seed."""
    return group(items, lambda job: job.seed)


def seed_values(items: Iterable[HasJob], value: Callable[[Any], float | None]) -> list[float]:
    """One value per seed: the mean of its repeats' values (None values left out).

    This is what statistics count: two runs of seed 0 are one sample, not two.
    """
    out = []
    for repeats in per_seed(items).values():
        values = [float(v) for item in repeats if (v := value(item)) is not None]
        if values:
            out.append(sum(values) / len(values))
    return out


def varying_fields(jobs: Iterable[Job]) -> list[str]:
    """The configuration fields that take more than one value among `jobs` (a missing model
    digest is no value)."""
    seen: dict[str, set] = {}
    for job in jobs:
        for name, value in job.fields().items():
            if name == "model_digest" and not value:
                continue
            seen.setdefault(name, set()).add(value)
    return [name for name in CONFIG_FIELDS if len(seen.get(name, ())) > 1]


def format_value(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def differences(base: Iterable[Job], new: Iterable[Job], skip: Iterable[str] = ()) -> list[str]:
    """Fields whose values differ between two sets of jobs, as `epochs 2 → 5`
    (`model 3f2a… → 9c1e…` for the model digest).

    A side holding several values shows them comma-separated. A missing model digest differs
    from none.
    """
    skip = set(skip)
    sides = []
    for jobs in (base, new):
        values: dict[str, list] = {}
        # Each job object once: a loader hands the records of one job one shared `Job`, and
        # `fields` copies the settings (thousands of records: seconds).
        for job in {id(j): j for j in jobs}.values():
            for name, value in job.fields().items():
                if name == "model_digest" and not value:
                    continue
                if value not in values.setdefault(name, []):
                    values[name].append(value)
        sides.append(values)
    out = []
    for name in CONFIG_FIELDS:
        if name in skip:
            continue
        a, b = sides[0].get(name, []), sides[1].get(name, [])
        if a and b and set(a) != set(b):
            shown = _SHOWN_AS.get(name, name)
            out.append(
                f"{shown} {','.join(map(format_value, a))} → {','.join(map(format_value, b))}"
            )
    return out


@dataclass(frozen=True)
class VariantSource:
    """Where a variant came from.

    Attributes:
        spec: as the user named it: `two-dense`, `acme-wide` (a plugin), `acme.nets:tiny`,
            `./my_nets.py:slim`.
        target: what is loaded: `MODULE:FUNCTION` or `/absolute/file.py:FUNCTION` (a built-in
            variant's: `built-in`).
        file: the file the function is defined in ("" where unknown).
        sha256: SHA-256 of that file ("" where unknown).
    """

    spec: str
    target: str = ""
    file: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"([0-9a-f]{64})?", self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} is not 64 hex digits")


@dataclass(frozen=True)
class WorkerRequest:
    """What the parent sends a worker process (as JSON on its stdin).

    Attributes:
        mode: train (run `jobs`) or describe (report each variant's size, for `list`).
        backend: the one backend this process serves.
        data: the dataset as the user named it (the worker loads it itself).
        threads, op_determinism: process-wide settings, shared by every job in `jobs`.
        targets: test accuracies for time-to-accuracy.
        infer_batch_sizes: batch sizes of the inference sweep.
        jobs: what to run, in order; events name a job by its index in this list.
        variants: where the worker loads each variant that is not built in, by name.
    """

    mode: str
    backend: str
    data: str = "mnist"
    threads: int | None = None
    op_determinism: bool = False
    targets: tuple[float, ...] = ()
    infer_batch_sizes: tuple[int, ...] = ()
    jobs: tuple[Job, ...] = ()
    variants: dict[str, VariantSource] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("train", "describe"):
            raise ValueError(f"mode {self.mode!r} is not train or describe")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        for job in self.jobs:
            if job.backend != self.backend or (
                (job.settings.threads, job.settings.op_determinism)
                != (self.threads, self.op_determinism)
            ):
                raise ValueError(f"job {job.label()} does not belong in a {self.backend} worker")

    def to_json(self) -> bytes:
        import msgspec

        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerRequest:
        import msgspec

        return msgspec.json.decode(raw, type=cls)
