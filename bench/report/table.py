"""The terminal table: one row per configuration, `mean ± half-width` over seeds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from rich import box
from rich.table import Table

from bench import stats
from bench.records import Record

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "bold red", "diverged": "bold red"}


@dataclass
class Row:
    """Records of one configuration (all seeds), or one record that did not finish ok."""

    variant: str
    backend: str
    device: str
    settings: dict
    records: list[Record]
    status: str

    def values(self, metric: str) -> list[float]:
        return [v for r in self.records if (v := getattr(r, metric)) is not None]

    def summary(self, metric: str) -> stats.Summary | None:
        values = self.values(metric)
        return stats.summarize(values) if values else None

    @property
    def contended(self) -> bool:
        return any(r.contended for r in self.records)


def rows(records: Iterable[Record]) -> list[Row]:
    """Group ok records by configuration; every other record is a row of its own."""
    out: list[Row] = []
    groups: dict[tuple, Row] = {}
    for r in records:
        if r.repeat:
            continue
        if r.status != "ok":
            out.append(Row(r.variant, r.backend, r.device, r.settings, [r], r.status))
            continue
        key = (r.variant, r.backend, r.device, json.dumps(r.settings, sort_keys=True))
        if key not in groups:
            groups[key] = Row(r.variant, r.backend, r.device, r.settings, [], "ok")
            out.append(groups[key])
        groups[key].records.append(r)
    return out


def fmt(summary: stats.Summary | None, digits: int, scale: float = 1.0) -> str:
    if summary is None:
        return "-"
    text = f"{summary.mean * scale:,.{digits}f}"
    if summary.half_width is not None:
        text += f" ± {summary.half_width * scale:,.{digits}f}"
    return text


def variant_label(row: Row, all_rows: list[Row]) -> str:
    """The variant name, plus its settings where one variant appears with several settings."""
    same = {json.dumps(r.settings, sort_keys=True) for r in all_rows if r.variant == row.variant}
    if len(same) <= 1:
        return row.variant
    s = row.settings
    lr = f" lr={s['learning_rate']:g}" if s.get("learning_rate") else ""
    sched = f" {s['schedule']}" if s.get("schedule", "constant") != "constant" else ""
    return f"{row.variant} [{s.get('optimizer')}{lr}{sched} e{s.get('epochs')}]"


def records_table(records: Iterable[Record], *, title: str | None = None,
                  color: bool = True) -> Table:
    """A rich table of records; `color=False` gives plain ASCII for pipes and files."""
    all_rows = rows(records)
    table = Table(title=title, box=box.SIMPLE_HEAVY if color else box.ASCII)
    for name, justify in (("variant", "left"), ("backend", "left"), ("device", "left"),
                          ("seeds", "right"), ("test accuracy", "right"), ("train s", "right"),
                          ("train samples/s", "right"), ("infer samples/s", "right"),
                          ("status", "left")):
        table.add_column(name, justify=justify)
    for row in all_rows:
        status = row.status if row.status == "ok" else f"{row.status}: {row.records[0].error}"
        if row.contended:
            status += " (contended)"
        style = STATUS_STYLE.get(row.status, "") if color else ""
        table.add_row(
            variant_label(row, all_rows), row.backend, row.device, str(len(row.records)),
            fmt(row.summary("test_accuracy"), 4), fmt(row.summary("train_seconds"), 1),
            fmt(row.summary("train_samples_per_second"), 0),
            fmt(row.summary("infer_samples_per_second"), 0),
            f"[{style}]{status}[/]" if style else status,
        )
    return table
