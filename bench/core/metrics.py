"""The one table of metrics: what each record metric is called, how it is shown, which way is
better, and whether it is a timing. Tables, CSV, compare, check, history, export and the run's
aggregates, the run file's range checks and its JSON schema all read it."""

from __future__ import annotations

from dataclasses import dataclass

MAX_VALUE = 1e50  # beyond any measurement; statistics over larger values would overflow


@dataclass(frozen=True)
class Metric:
    """A record attribute that tables, CSV, compare, check and the run's aggregates summarize.

    Attributes:
        name: the `Record` attribute.
        label: its column heading.
        digits: decimals shown.
        higher_is_better: the direction of an improvement (compare's verdicts).
        is_timing: judged with the time tolerance; meaningless for contended or unstable
            records.
        headline: shown in tables, judged by compare and check, summarized in the run's
            aggregates (`HEADLINE`); every metric is in CSV.
        shown: a table column too, where some row has a value, but neither judged nor
            summarized in the aggregates (`columns`).
        scale: what the table multiplies it by (100: a fraction shown as a percentage).
        unit: the unit its exported mean is in (export).
        export_scale: what export multiplies it by to be in `unit` (100: a fraction in %).
        low, high: the valid range of a record's value; outside it the run file is
            inconsistent and a fresh record drops the value (records, the JSON schema).
        throughput: a samples-per-second rate (compare judges it against the time budget).
        tracked: followed over commits (history).
    """

    name: str
    label: str
    digits: int = 0
    higher_is_better: bool = True
    is_timing: bool = True
    headline: bool = False
    shown: bool = False
    scale: float = 1.0
    unit: str = ""
    export_scale: float = 1.0
    low: float = 0.0
    high: float = MAX_VALUE
    throughput: bool = False
    tracked: bool = False


# The one list of metrics, in column order. Tables, compare and the run's aggregates take the
# headline ones; CSV has all of them.
METRICS = (
    Metric("test_accuracy", "test accuracy", 4, True, False, headline=True, unit="%",
           export_scale=100.0, high=1.0, tracked=True),
    Metric("train_seconds", "train s", 1, False, True, headline=True, unit="s"),
    Metric("train_samples_per_second", "train samples/s", 0, True, True, headline=True,
           unit="samples/s", throughput=True),
    Metric("infer_samples_per_second", "infer samples/s", 0, True, True, headline=True,
           unit="samples/s", throughput=True),
    Metric("test_loss", "test loss", 4, False, False, unit="loss", low=-MAX_VALUE),
    Metric("first_epoch_seconds", "first epoch s", 2, False, True, unit="s"),
    Metric("steady_epoch_seconds", "steady epoch s", 2, False, True, unit="s", tracked=True),
    Metric("achieved_gflops", "GFLOP/s", 2, True, True, unit="GFLOP/s"),
    Metric("mfu", "MFU %", 2, True, True, shown=True, scale=100.0, unit="%",
           export_scale=100.0),  # CPU only: NumPy peak
    Metric("peak_rss_mib", "peak RSS MiB", 0, False, False, unit="MiB"),
    Metric("cpu_seconds_per_1k_samples", "CPU s/1k samples", 3, False, True,
           unit="CPU s/1k samples"),  # steady state, the worker's user + system seconds
)  # fmt: skip
HEADLINE = tuple(m for m in METRICS if m.headline)
ACCURACY = next(m for m in METRICS if m.name == "test_accuracy")  # what `check` gates on
# What history follows over commits: accuracy on a linear scale (a step is in points), the
# steady epoch on a log scale (a step is a ratio, whatever the epoch's length).
TRACKED = tuple(m for m in METRICS if m.tracked)
