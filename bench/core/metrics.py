"""The one table of metrics: what each record metric is called, how it is shown, which way is
better, and whether it is a timing. Tables, CSV, compare, check, history, export and the run's
aggregates all read it."""

from __future__ import annotations

from dataclasses import dataclass


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
    """

    name: str
    label: str
    digits: int = 0
    higher_is_better: bool = True
    is_timing: bool = True
    headline: bool = False
    shown: bool = False
    scale: float = 1.0


# The one list of metrics, in column order. Tables, compare and the run's aggregates take the
# headline ones; CSV has all of them.
METRICS = (
    Metric("test_accuracy", "test accuracy", 4, True, False, headline=True),
    Metric("train_seconds", "train s", 1, False, True, headline=True),
    Metric("train_samples_per_second", "train samples/s", 0, True, True, headline=True),
    Metric("infer_samples_per_second", "infer samples/s", 0, True, True, headline=True),
    Metric("test_loss", "test loss", 4, False, False),
    Metric("first_epoch_seconds", "first epoch s", 2, False, True),
    Metric("steady_epoch_seconds", "steady epoch s", 2, False, True),
    Metric("achieved_gflops", "GFLOP/s", 2, True, True),
    Metric("mfu", "MFU %", 2, True, True, shown=True, scale=100.0),  # CPU only: NumPy peak
    Metric("peak_rss_mib", "peak RSS MiB", 0, False, False),
    Metric("cpu_seconds_per_1k_samples", "CPU s/1k samples", 3, False, True),  # steady epochs
)
HEADLINE = tuple(m for m in METRICS if m.headline)
ACCURACY = next(m for m in METRICS if m.name == "test_accuracy")  # what `check` gates on
