"""Report rows: what makes a row (records grouped by configuration, `identity`) and a row's
cells as plain text, for the metrics of `core.metrics`.
Framework-free and rich-free: every format and the runner's aggregates import it."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mnist_bench.analyse.defaults import DEFAULT_BY, GROUP_KEYS
from mnist_bench.core import identity, stats
from mnist_bench.core.config import TrainSettings
from mnist_bench.core.metrics import METRICS, Metric
from mnist_bench.runfile.records import Record

is_set = functools.partial(operator.is_not, None)  # a value that is not None
# Every metric of a record at once: a row's records are read once for all its columns, each
# record's fields together (column by column, 20,000 records a row, took half as long again).
METRIC_AT = {m.name: i for i, m in enumerate(METRICS)}
all_metrics = operator.attrgetter(*METRIC_AT)


@dataclass
class Row:
    """Records of one configuration (every seed and repeat), or one record that did not finish
    ok. Statistics count seeds: the repeats of a seed are averaged first."""

    variant: str
    backend: str
    device: str
    settings: TrainSettings
    records: list[Record]
    status: str
    machine: str = ""  # set when rows are grouped by machine
    # What is read of its records, worked out once each (a row of 10,000 runs holds 20,000
    # records): the record count they were worked out for (records are only ever added), and
    # each answer by name.
    _known: tuple[int, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _once(self, name: str, work: Callable[[], Any]) -> Any:
        if self._known is None or self._known[0] != len(self.records):
            self._known = (len(self.records), {})
        answers = self._known[1]
        if name not in answers:
            answers[name] = work()
        return answers[name]

    def _per_seed(self) -> list[list[Record]]:
        return self._once("", lambda: list(identity.per_seed(self.records).values()))

    def _metrics(self) -> list[list[tuple]]:
        """Per seed, each record's metrics (`all_metrics`)."""
        return self._once("metrics", lambda: [list(map(all_metrics, r)) for r in self._per_seed()])

    def values(self, metric: str) -> list[float]:
        """One value per seed."""

        def work() -> list[float]:
            at = METRIC_AT.get(metric)
            if at is None:
                get = operator.attrgetter(metric)
                seeds = [map(get, repeats) for repeats in self._per_seed()]
            else:
                pick = operator.itemgetter(at)
                seeds = [map(pick, repeats) for repeats in self._metrics()]
            out = []
            for repeats in seeds:
                values = list(map(float, filter(is_set, repeats)))
                if values:
                    out.append(sum(values) / len(values))
            return out

        return list(self._once(f"values {metric}", work))

    def has(self, metric: str) -> bool:
        """Whether some record holds a value of `metric`."""
        return self._once(
            f"has {metric}",
            lambda: any(v is not None for v in map(operator.attrgetter(metric), self.records)),
        )

    def summary(self, metric: str) -> stats.Summary | None:
        values = self.values(metric)
        return stats.summarize(values) if values else None

    @property
    def seeds(self) -> int:
        return len(self._per_seed())

    def _any(self, flag: str) -> bool:
        return self._once(flag, lambda: any(map(operator.attrgetter(flag), self.records)))

    @property
    def contended(self) -> bool:
        return self._any("contended")

    @property
    def unstable(self) -> bool:
        return self._any("unstable")

    @property
    def injected(self) -> bool:
        """Some record was slowed on purpose (`MNIST_BENCH_INJECT_SLOWDOWN`): not a measurement."""
        return self._any("injected")

    @property
    def includes_compilation(self) -> bool:
        """Some record had no steady epoch (one epoch): its throughput includes tracing and
        compilation."""
        return self._once(
            "includes_compilation",
            lambda: any(
                r.train_samples_per_second is not None and len(r.epoch_seconds) < 2
                for r in self.records
            ),
        )


def rows(
    records: Iterable[Record],
    *,
    by: Sequence[str] = DEFAULT_BY,
    machine_of: Callable[[Record], str] | None = None,
) -> list[Row]:
    """Group ok records by configuration; every other record is a row of its own.

    Args:
        records: the records; runs of a seed repeated in several run files join their seed's
            row and are averaged per seed. The second process of `--check-determinism`
            (`repeat > 0`) is a check of the first, not a measurement: it is left out.
        by: the keys that make a row, from `GROUP_KEYS`; with `variant`, the whole configuration
            counts (dataset, training settings: `core.identity`). A key left out is merged
            over: its row field lists the values it holds, comma-separated.
        machine_of: each record's machine label; needed when `by` holds `machine`.
    """
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown or ("machine" in by and machine_of is None):
        raise ValueError(
            f"bad group keys {list(by)}; valid: {', '.join(GROUP_KEYS)} (machine needs machine_of)"
        )

    def value(r: Record, name: str) -> str:
        if name == "machine":
            return machine_of(r) if machine_of else ""
        return r.where if name == "device" else getattr(r, name)

    def new_row(r: Record, status: str) -> Row:
        return Row(r.variant, r.backend, r.where, r.settings, [], status, value(r, "machine"))

    out: list[Row] = []
    groups: dict[tuple, Row] = {}
    records = list(records)
    fill = identity.digest_filler(r.job for r in records)
    # A record's key follows from its job, its device and its machine: worked out once per
    # (job, device, machine), as loaders give the records of one job one shared `Job`.
    keys: dict[tuple, tuple] = {}
    by_machine = "machine" in by
    for r in records:
        job = r.job
        if job.repeat:
            continue
        if r.status != "ok":
            out.append(new_row(r, r.status))
            out[-1].records.append(r)
            continue
        probe = (id(job), r.device, value(r, "machine") if by_machine else "")
        key = keys.get(probe)
        if key is None:
            key = tuple(value(r, k) for k in by)
            if "variant" in by:
                key += (fill(job).config_key,)
            keys[probe] = key
        if key not in groups:
            groups[key] = new_row(r, "ok")
            out.append(groups[key])
        groups[key].records.append(r)
    for row in out:
        for name in GROUP_KEYS:
            if name not in by and len(row.records) > 1:
                values = dict.fromkeys(value(r, name) for r in row.records)
                setattr(row, name, ", ".join(values))
    return out


def fmt(summary: stats.Summary | None, digits: int, scale: float = 1.0) -> str:
    if summary is None:
        return "-"
    text = f"{summary.mean * scale:,.{digits}f}"
    if summary.half_width is not None:
        text += f" ± {summary.half_width * scale:,.{digits}f}"
    return text


# Shown in their own columns, or not at all (the job's device is the requested one).
_NOT_IN_LABEL = ("variant", "backend", "device", "dataset")


def variant_label(row: Row, all_rows: list[Row]) -> str:
    """The variant name, plus the configuration fields (dataset, settings) that tell its rows
    apart where one variant appears in several configurations: `two-dense [epochs=5]`."""
    job = row.records[0].job
    label = row.variant
    mine = [r.records[0].job for r in all_rows if r.variant == row.variant]
    varying = identity.varying_fields(mine)
    if "dataset" in varying:
        label += f" ({job.dataset})"
    if "dataset_digest" in varying and not _shared_name(mine):
        varying.remove("dataset_digest")  # the dataset's name tells them apart
    fields = job.fields()
    shown = [
        f"{name}={identity.format_value(fields[name])}"
        for name in varying
        if name not in _NOT_IN_LABEL
    ]
    return f"{label} [{' '.join(shown)}]" if shown else label


def summary_dicts(all_rows: list[Row], by: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One plain dict per row: configuration (and each key of `by` beyond it, e.g. machine),
    seeds, status, and for each headline metric its mean over seeds and `<metric>_ci95`, the
    half-width of its 95% confidence interval (None with one seed); `settings` a dict."""
    from mnist_bench.core.metrics import HEADLINE

    out = []
    for row in all_rows:
        job = row.records[0].job
        entry: dict[str, Any] = {
            "variant": row.variant,
            "label": variant_label(row, all_rows),
            "backend": row.backend,
            "device": row.device,
        }
        entry.update({k: getattr(row, k) for k in by if k not in entry})
        entry.update(dataset=job.dataset, seeds=row.seeds, status=row.status)
        for metric in HEADLINE:
            summary = row.summary(metric.name)
            entry[metric.name] = summary.mean if summary else None
            entry[f"{metric.name}_ci95"] = summary.half_width if summary else None
        entry["error"] = None if row.status == "ok" else row.records[0].error
        entry["contended"] = row.contended
        entry["settings"] = job.settings.to_dict()
        out.append(entry)
    return out


def _shared_name(jobs: Sequence[identity.Job]) -> bool:
    """Whether two datasets of `jobs` share a name (the digest alone tells them apart)."""
    digests: dict[str, set[str]] = {}
    for job in jobs:
        digests.setdefault(job.dataset, set()).add(str(job.fields().get("dataset_digest")))
    return any(len(d) > 1 for d in digests.values())


# The mark on a throughput that includes compilation, and the legend lines of tables.
COMPILED_MARK = "*"
COMPILED_NOTE = (
    f"{COMPILED_MARK} one epoch, none steady: the training throughput includes tracing and "
    "compilation (train 2 epochs or more for the steady state)"
)
FLAG_NOTES = {
    "contended": "(contended): other processes took over 25% of the CPU while it ran; its "
    "timings are not judged by compare or check",
    "unstable": "(unstable): its steady-state time is not pinned down: the 95% interval of "
    "its median window (after the warm-up) is +-10% or wider, or its steady epochs spread by "
    "10% or more (median absolute deviation) where it has no windows; its timings are not "
    "judged by compare or check",
    "injected": "(injected): trained with a bug or slowed on purpose by a test hook "
    "(MNIST_BENCH_INJECT_BUG, MNIST_BENCH_INJECT_SLOWDOWN); not a measurement",
}
COLUMN_NOTES = {
    "seeds": "seeds: records averaged into the row (cells: mean ± 95% CI half-width over seeds)",
    "test accuracy": "test accuracy: on the held-out test set after the last epoch",
    "train s": "train s: wall time of all epochs, compilation included",
    "train samples/s": "train samples/s: training images per second in the steady state (the "
    "median timing window after the warm-up; runs without windows: the epochs after the first)",
    "infer samples/s": "infer samples/s: predict over the test set, images per second",
    "MFU %": "MFU %: achieved training FLOP/s over the machine's measured float32 matmul peak "
    "(CPU only)",
}


def notes(all_rows: Sequence[Row]) -> list[str]:
    """Legend lines for the marks and status flags that `all_rows` carry (nothing if none)."""
    out = [COMPILED_NOTE] if any(r.includes_compilation for r in all_rows) else []
    return out + [
        text for flag, text in FLAG_NOTES.items() if any(getattr(r, flag) for r in all_rows)
    ]


def column_notes(all_rows: Sequence[Row]) -> list[str]:
    """What each metric column of a table of `all_rows` means."""
    names = ["seeds", *(m.label for m in columns(all_rows))]
    return [COLUMN_NOTES[n] for n in names if n in COLUMN_NOTES]


def status_text(row: Row) -> str:
    """`ok`, or the status and its error; `(contended)`, `(unstable)`, `(injected)` where a
    record was."""
    text = row.status if row.status == "ok" else f"{row.status}: {row.records[0].error}"
    flags = [name for name in ("contended", "unstable", "injected") if getattr(row, name)]
    return " ".join([text, *(f"({name})" for name in flags)])


def columns(all_rows: Sequence[Row]) -> tuple[Metric, ...]:
    """The metrics a table of `all_rows` shows: the headline ones, and each `shown` one that
    some row has (MFU, which only CPU records on a machine with a measured peak carry)."""

    return tuple(
        m for m in METRICS if m.headline or (m.shown and any(row.has(m.name) for row in all_rows))
    )


def headers(all_rows: Sequence[Row], by: Sequence[str] = DEFAULT_BY) -> list[str]:
    """Column names of `cells` for a table of `all_rows`: the group keys, seeds, the metrics
    (`columns`), status."""
    return [*by, "seeds", *(m.label for m in columns(all_rows)), "status"]


def cells(row: Row, all_rows: list[Row], by: Sequence[str] = DEFAULT_BY) -> list[str]:
    """One row as plain text, in the order of `headers(all_rows, by)`."""
    keys = [variant_label(row, all_rows) if k == "variant" else getattr(row, k) for k in by]
    metrics = [
        fmt(row.summary(m.name), m.digits, m.scale)
        + (
            f" {COMPILED_MARK}"
            if m.name == "train_samples_per_second" and row.includes_compilation
            else ""
        )
        for m in columns(all_rows)
    ]
    seeds = str(row.seeds)
    if len(row.records) > row.seeds:
        seeds += f" ({len(row.records)} runs)"
    return [*keys, seeds, *metrics, status_text(row)]
