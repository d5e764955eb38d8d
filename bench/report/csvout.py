"""CSV of report rows (one line per group: n, then mean, std and 95% CI per metric) or records."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence

from bench.records import Record
from bench.report.table import DEFAULT_BY, Row

METRICS = (
    "test_accuracy",
    "test_loss",
    "train_seconds",
    "first_epoch_seconds",
    "steady_epoch_seconds",
    "train_samples_per_second",
    "infer_samples_per_second",
    "achieved_gflops",
    "mfu",
    "peak_rss_mib",
)
STATS = ("mean", "std", "ci_low", "ci_high")


def _text(rows: Iterable[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def _setting_names(settings: Iterable[dict]) -> list[str]:
    return list(dict.fromkeys(k for s in settings for k in s))


def render(rows: list[Row], by: Sequence[str] = DEFAULT_BY) -> str:
    """One line per row; with `variant` in `by`, its dataset and settings too."""
    settings = _setting_names(r.settings for r in rows) if "variant" in by else []
    extra = ["dataset", *settings] if "variant" in by else []
    header = [*by, *extra, "n", "status", "error", "contended"]
    header += [f"{m}_{s}" for m in METRICS for s in STATS]
    lines: list[list] = [header]
    for row in rows:
        first = row.records[0]
        line = [getattr(row, k) for k in by]
        if "variant" in by:
            line += [first.dataset, *(row.settings.get(k) for k in settings)]
        line += [len(row.records), row.status, first.error if row.status != "ok" else None]
        line.append(row.contended)
        for metric in METRICS:
            summary = row.summary(metric)
            line += [getattr(summary, s) if summary else None for s in STATS]
        lines.append(line)
    return _text(lines)


def render_raw(
    records: Iterable[Record],
    machine_of: Callable[[Record], str],
    run_id_of: Callable[[Record], str],
) -> str:
    """One line per record, determinism repeats included (column `repeat`)."""
    records = list(records)
    settings = _setting_names(r.settings for r in records)
    keys = ("variant", "backend", "device", "dataset", "seed", "repeat", "status", "error")
    header = ["run_id", "machine", *keys, *settings, "contended", *METRICS]
    lines: list[list] = [header]
    for r in records:
        line = [run_id_of(r), machine_of(r), *(getattr(r, k) for k in keys)]
        line += [r.settings.get(k) for k in settings]
        line += [r.contended, *(getattr(r, m) for m in METRICS)]
        lines.append(line)
    return _text(lines)
