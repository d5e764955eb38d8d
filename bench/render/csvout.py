"""CSV of report rows (one line per group: n, then mean, std and 95% CI per metric) or records."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from mnist_bench.analyse.rows import DEFAULT_BY, Row
from mnist_bench.core import escape
from mnist_bench.core.config import SETTINGS_FIELDS
from mnist_bench.core.metrics import METRICS as ALL_METRICS
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    from mnist_bench.analyse.report import Report

METRICS = tuple(m.name for m in ALL_METRICS)  # every metric, headline ones first
STATS = ("mean", "std", "ci_low", "ci_high")
# Per record (--raw): whether its timings can be trusted, and why not.
TRUST = ("contended", "unstable", "steady_epoch_cv", "steady_epoch_max_min")
CONTENTION = ("other_cpu_share", "steal_share", "loadavg_1m")


def _text(rows: Iterable[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([["" if v is None else escape.csv_cell(v) for v in row] for row in rows])
    return buffer.getvalue()


def render(rows: list[Row], by: Sequence[str] = DEFAULT_BY) -> str:
    """One line per row; with `variant` in `by`, its dataset and settings too."""
    settings = list(SETTINGS_FIELDS) if "variant" in by else []
    extra = ["dataset", *settings] if "variant" in by else []
    header = [*by, *extra, "n", "runs", "status", "error", "contended", "unstable"]
    header += [f"{m}_{s}" for m in METRICS for s in STATS]
    lines: list[list] = [header]
    for row in rows:
        first = row.records[0]
        line = [getattr(row, k) for k in by]
        if "variant" in by:
            line += [first.dataset, *(getattr(row.settings, k) for k in settings)]
        line += [row.seeds, len(row.records), row.status]
        line.append(first.error if row.status != "ok" else None)
        line += [row.contended, row.unstable]
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
    settings = list(SETTINGS_FIELDS)
    keys: tuple[str, ...]
    keys = ("variant", "backend", "requested_device", "device", "dataset", "seed", "repeat")
    keys += ("status", "error")
    header = ["run_id", "machine", *keys, *settings, *TRUST, *CONTENTION, *METRICS]
    lines: list[list] = [header]
    for r in records:
        line = [run_id_of(r), machine_of(r), *(getattr(r, k) for k in keys)]
        line += [getattr(r.settings, k) for k in settings]
        line += [getattr(r, k) for k in TRUST]
        line += [(r.contention or {}).get(k) for k in CONTENTION]
        line += [getattr(r, m) for m in METRICS]
        lines.append(line)
    return _text(lines)


def render_report(report: Report) -> str:
    return render(report.rows, report.by)


def render_report_raw(report: Report) -> str:
    return render_raw(collect.records(report.runs), report.machine_of, report.run_id)
