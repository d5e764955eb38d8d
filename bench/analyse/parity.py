"""Do the backends agree, test sample by test sample? What `mnist-bench parity` shows.

For each job run on several backends (the same variant, seed, device, dataset and settings:
`identity.same_except(a, b, "backend")`), compares the predicted test labels its records keep
(`Record.predicted_labels`): the share of test samples two backends label alike (mean over the
seeds both ran, and the lowest seed), each backend's accuracy and their spread, and the
confusion-matrix cells where two backends differ most. Reads run files only; imports NumPy,
no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.core import identity
from mnist_bench.core.config import BACKENDS
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.runfile import collect
from mnist_bench.runfile.machine import Environment
from mnist_bench.runfile.records import Record, unpack_labels

if TYPE_CHECKING:
    import pandas

TOP_CELLS = 3  # confusion cells named per pair


# What tells groups apart in a title; backend, seed and repeat are what parity spans.
_SPANNED = ("backend", "seed", "repeat")


def agreement(a: Any, b: Any) -> float:
    """The share of samples two label arrays of one test set give the same label."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"{len(a)} labels against {len(b)}")
    return float(np.mean(np.asarray(a) == np.asarray(b))) if len(a) else 1.0


def largest_cells(difference: Sequence[Sequence[int]], top: int = TOP_CELLS) -> list[tuple]:
    """The `top` cells of a confusion difference with the largest magnitude, as (truth,
    predicted, count), largest first (ties in reading order); zero cells left out."""
    cells = [
        (i, j, value) for i, row in enumerate(difference) for j, value in enumerate(row) if value
    ]
    return sorted(cells, key=lambda c: -abs(c[2]))[:top]


@dataclass
class Labelled:
    """An ok record with its predicted labels unpacked, and the file it came from."""

    record: Record
    labels: Any  # NumPy uint8 array, in test-set order
    path: Path


@dataclass
class Pair:
    """Two backends on the seeds both ran.

    Attributes:
        a, b: the backends.
        seeds: the seeds both ran, in order.
        agreements: per seed, the share of test samples labelled alike.
        accuracy_a, accuracy_b: mean test accuracy over those seeds.
        difference: confusion matrix of `a` minus that of `b`, summed over those seeds.
        disagreeing: test samples labelled differently, summed over those seeds (two of them
            can cancel out in `difference`: 4 -> 9 on one backend, 9 -> 4 on the other).
    """

    a: str
    b: str
    seeds: list[int]
    agreements: list[float]
    accuracy_a: float
    accuracy_b: float
    difference: list[list[int]]
    disagreeing: int

    @property
    def mean(self) -> float:
        return sum(self.agreements) / len(self.agreements)

    @property
    def min(self) -> float:
        return min(self.agreements)


@dataclass
class Group:
    """One job (seed aside) and the backends it ran on: `by_backend[backend][seed]`."""

    job: Job
    by_backend: dict[str, dict[int, Labelled]]
    pairs: list[Pair] = field(default_factory=list)

    @property
    def backends(self) -> list[str]:
        return list(self.by_backend)

    def accuracy(self, backend: str) -> float:
        values = [x.record.test_accuracy or 0.0 for x in self.by_backend[backend].values()]
        return sum(values) / len(values)

    @property
    def spread(self) -> float:
        """Highest minus lowest of the backends' mean accuracies."""
        values = [self.accuracy(b) for b in self.backends]
        return max(values) - min(values)

    def pair(self, a: str, b: str) -> Pair | None:
        return next((p for p in self.pairs if (p.a, p.b) == (a, b)), None)


@dataclass
class Parity:
    """Every group with two or more backends, and what was left out."""

    groups: list[Group]
    runs: list[collect.LoadedRun]
    unlabelled: int = 0  # ok records without predicted labels (older files)
    single: int = 0  # jobs (seed aside) with labels on one backend only

    @property
    def notes(self) -> list[str]:
        """What was left out, a line each."""
        out = []
        if self.unlabelled:
            out.append(
                f"{self.unlabelled} ok record(s) have no predicted labels (written before run "
                "files kept them): left out"
            )
        if self.single:
            out.append(f"{self.single} job(s) ran on one backend only: left out")
        return out

    def title(self, group: Group) -> str:
        """The variant, and the fields that tell this group from the others: `two-dense
        [epochs=5]`."""
        varying = [
            name
            for name in identity.varying_fields(g.job for g in self.groups)
            if name not in _SPANNED and name not in ("variant", "dataset_digest")
        ]
        fields = group.job.fields()
        shown = [f"{name}={identity.format_value(fields[name])}" for name in varying]
        return group.job.variant + (f" [{' '.join(shown)}]" if shown else "")

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame, one row per pair of backends of a group: the group's `title` and
        variant, backends `a` and `b`, `seeds` (both ran), agreement `mean` and `min` over
        them, `accuracy_a`, `accuracy_b`, and `disagreeing` (test samples labelled apart).

        Raises:
            UserError: pandas is not installed.
        """
        from mnist_bench.runfile.frame import data_frame

        out = [
            {
                "title": self.title(group),
                "variant": group.job.variant,
                "a": pair.a,
                "b": pair.b,
                "seeds": len(pair.seeds),
                "mean": pair.mean,
                "min": pair.min,
                "accuracy_a": pair.accuracy_a,
                "accuracy_b": pair.accuracy_b,
                "disagreeing": pair.disagreeing,
            }
            for group in self.groups
            for pair in group.pairs
        ]
        columns = ["title", "variant", "a", "b", "seeds", "mean", "min", "accuracy_a",
                   "accuracy_b", "disagreeing"]  # fmt: skip
        return data_frame(out, columns)

    def class_names(self, group: Group) -> list[str] | None:
        first = next(iter(next(iter(group.by_backend.values())).values()))
        for loaded in self.runs:
            if loaded.path == first.path:
                names = Environment.of(loaded.run.environment).class_names
                return None if names is None else list(names)
        return None


def has_labels(records: Iterable[Record]) -> bool:
    return any(r.predicted_labels is not None for r in records)


def _labelled(record: Record, path: Path) -> Labelled:
    """Unpack a record's labels; they must agree with its confusion matrix's columns."""
    import numpy as np

    where = f"{path}: {record.job.label()}"
    assert record.predicted_labels is not None  # records without labels are counted, not read
    try:
        labels = unpack_labels(record.predicted_labels, record.test_samples or 0)
    except ValueError as exc:
        raise UserError(f"{where}: predicted_labels unreadable ({exc})") from None
    matrix = record.confusion_matrix
    if matrix is not None:
        predicted = [sum(column) for column in zip(*matrix, strict=True)]
        counted = np.bincount(labels, minlength=len(matrix)).tolist()
        if counted != predicted:
            raise UserError(
                f"{where}: predicted_labels disagree with the confusion matrix "
                f"(per class {counted}, the matrix says {predicted})"
            )
    return Labelled(record, labels, path)


def compare(runs: Sequence[collect.LoadedRun]) -> Parity:
    """Group the labelled ok records of `runs` by job (backend, seed and repeat aside) and
    compare every pair of backends of a group. A job found twice (a repeat, or one run file
    read twice) counts once: its first record, repeat 0 first.

    Raises:
        UserError: labels that cannot be unpacked or disagree with their record's matrix.
    """
    groups: dict[tuple, Group] = {}
    unlabelled = 0
    found = [(r, loaded.path) for loaded in runs for r in loaded.run.records if r.status == "ok"]
    for record, path in sorted(found, key=lambda item: item[0].repeat):
        if record.predicted_labels is None or not record.confusion_matrix:
            unlabelled += 1
            continue
        key = identity.key_except(record.job, *_SPANNED)
        group = groups.setdefault(key, Group(record.job, {}))
        seeds = group.by_backend.setdefault(record.backend, {})
        if record.seed not in seeds:
            seeds[record.seed] = _labelled(record, path)
    parity = Parity([], list(runs), unlabelled=unlabelled)
    for group in groups.values():
        if len(group.by_backend) < 2:
            parity.single += 1
            continue
        order = {name: i for i, name in enumerate(BACKENDS)}
        group.by_backend = dict(sorted(group.by_backend.items(), key=lambda kv: order[kv[0]]))
        names = group.backends
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pair = _pair(group, a, b)
                if pair is not None:
                    group.pairs.append(pair)
        parity.groups.append(group)
    return parity


def _pair(group: Group, a: str, b: str) -> Pair | None:
    import numpy as np

    first, second = group.by_backend[a], group.by_backend[b]
    seeds = [seed for seed in first if seed in second]
    if not seeds:
        return None
    agreements, disagreeing = [], 0
    difference: np.ndarray = np.zeros((), dtype=np.int64)  # summed confusion differences
    for seed in seeds:
        x, y = first[seed], second[seed]
        mx, my = np.asarray(x.record.confusion_matrix), np.asarray(y.record.confusion_matrix)
        if len(x.labels) != len(y.labels) or mx.shape != my.shape:
            raise UserError(
                f"{x.path} and {y.path}: {x.record.job.label()} and {y.record.job.label()} "
                f"labelled different test sets ({len(x.labels)} and {len(y.labels)} samples, "
                f"{len(mx)} and {len(my)} classes)"
            )
        agreements.append(agreement(x.labels, y.labels))
        disagreeing += int(np.count_nonzero(x.labels != y.labels))
        difference = difference + (mx - my)
    accuracy = [
        sum(side[s].record.test_accuracy or 0.0 for s in seeds) / len(seeds)
        for side in (first, second)
    ]
    return Pair(a, b, seeds, agreements, accuracy[0], accuracy[1], difference.tolist(), disagreeing)


def build(
    paths: Sequence[str],
    *,
    skip_bad: bool = False,
    warn: Callable[[str], None] | None = None,
    skip_option: str = "--skip-bad",
) -> Parity:
    """Load the run files under `paths` and compare (`compare`).

    Raises:
        UserError: a bad file (unless `skip_bad`), no record with predicted labels, or no job
            with labels on two backends.
    """
    runs = collect.load_runs(
        paths, skip_bad=skip_bad, warn=warn, skip_option=skip_option, full=True
    )
    parity = compare(runs)
    if not parity.groups:
        if parity.unlabelled and not parity.single:
            raise UserError(
                f"no record has predicted labels ({parity.unlabelled} ok record(s) written "
                "before run files kept them); run again to compare backends"
            )
        raise UserError(
            "no job ran on two backends with predicted labels: nothing to compare (run with "
            "-b for two or more backends, the same variant, seed and settings)"
        )
    return parity
