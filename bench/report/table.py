"""The terminal table: one row per configuration, `mean ± half-width` over seeds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text

from bench import stats
from bench.records import Record, settings_key

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "bold red", "diverged": "bold red"}
GROUP_KEYS = ("variant", "backend", "device", "machine")  # what rows can be grouped by
DEFAULT_BY = ("variant", "backend", "device")
# (column, Record attribute, digits): the metrics every table shows, as `mean ± half-width`
METRIC_COLUMNS = (
    ("test accuracy", "test_accuracy", 4),
    ("train s", "train_seconds", 1),
    ("train samples/s", "train_samples_per_second", 0),
    ("infer samples/s", "infer_samples_per_second", 0),
)


@dataclass
class Row:
    """Records of one configuration (all seeds), or one record that did not finish ok."""

    variant: str
    backend: str
    device: str
    settings: dict
    records: list[Record]
    status: str
    machine: str = ""  # set when rows are grouped by machine

    def values(self, metric: str) -> list[float]:
        return [v for r in self.records if (v := getattr(r, metric)) is not None]

    def summary(self, metric: str) -> stats.Summary | None:
        values = self.values(metric)
        return stats.summarize(values) if values else None

    @property
    def contended(self) -> bool:
        return any(r.contended for r in self.records)


def rows(
    records: Iterable[Record],
    *,
    by: Sequence[str] = DEFAULT_BY,
    machine_of: Callable[[Record], str] | None = None,
) -> list[Row]:
    """Group ok records by configuration; every other record is a row of its own.

    Args:
        records: the records; second determinism processes (`repeat > 0`) are left out.
        by: the keys that make a configuration, from `GROUP_KEYS`; with `variant`, the dataset
            and training settings count too. A key left out is merged over: its row field
            lists the values it holds, comma-separated.
        machine_of: each record's machine label; needed when `by` holds `machine`.
    """
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown or ("machine" in by and machine_of is None):
        raise ValueError(
            f"bad group keys {list(by)}; valid: {', '.join(GROUP_KEYS)} (machine needs machine_of)"
        )

    def value(r: Record, name: str) -> str:
        return (machine_of(r) if machine_of else "") if name == "machine" else getattr(r, name)

    out: list[Row] = []
    groups: dict[tuple, Row] = {}
    for r in records:
        if r.repeat:
            continue
        if r.status != "ok":
            out.append(
                Row(r.variant, r.backend, r.device, r.settings, [r], r.status, value(r, "machine"))
            )
            continue
        key = tuple(value(r, k) for k in by)
        if "variant" in by:
            key += (r.dataset, settings_key(r.settings))
        if key not in groups:
            groups[key] = Row(
                r.variant, r.backend, r.device, r.settings, [], "ok", value(r, "machine")
            )
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


def variant_label(row: Row, all_rows: list[Row]) -> str:
    """The variant name, plus its settings (or dataset) where one variant appears with several."""
    mine = [r.records[0] for r in all_rows if r.variant == row.variant]
    label = row.variant
    if len({r.dataset for r in mine}) > 1:
        label += f" ({row.records[0].dataset})"
    if len({settings_key(r.settings) for r in mine}) <= 1:
        return label
    s = row.settings
    lr = f" lr={s['learning_rate']:g}" if s.get("learning_rate") else ""
    sched = f" {s['schedule']}" if s.get("schedule", "constant") != "constant" else ""
    return f"{label} [{s.get('optimizer')}{lr}{sched} e{s.get('epochs')}]"


def status_text(row: Row) -> str:
    """`ok`, or the status and its error; `(contended)` where a record was."""
    text = row.status if row.status == "ok" else f"{row.status}: {row.records[0].error}"
    return text + " (contended)" if row.contended else text


def headers(by: Sequence[str] = DEFAULT_BY) -> list[str]:
    """Column names of `cells`: the group keys, seeds, the metrics, status."""
    return [*by, "seeds", *(name for name, _, _ in METRIC_COLUMNS), "status"]


def cells(row: Row, all_rows: list[Row], by: Sequence[str] = DEFAULT_BY) -> list[str]:
    """One row as plain text, in the order of `headers(by)`."""
    keys = [variant_label(row, all_rows) if k == "variant" else getattr(row, k) for k in by]
    metrics = [fmt(row.summary(attr), digits) for _, attr, digits in METRIC_COLUMNS]
    return [*keys, str(len(row.records)), *metrics, status_text(row)]


def records_table(
    records: Iterable[Record],
    *,
    title: str | None = None,
    color: bool = True,
    by: Sequence[str] = DEFAULT_BY,
    machine_of: Callable[[Record], str] | None = None,
) -> Table:
    """A rich table of records; `color=False` gives plain ASCII for pipes and files.

    `by` and `machine_of` group the rows as in `rows`.
    """
    return rows_table(rows(records, by=by, machine_of=machine_of), title=title, color=color, by=by)


def rows_table(
    all_rows: list[Row],
    *,
    title: str | None = None,
    color: bool = True,
    by: Sequence[str] = DEFAULT_BY,
) -> Table:
    """A rich table of rows made by `rows(..., by=by)`."""
    table = Table(title=title, box=box.SIMPLE_HEAVY if color else box.ASCII)
    for name in headers(by):
        table.add_column(name, justify="left" if name in (*by, "status") else "right")
    for row in all_rows:
        line = [Text(cell) for cell in cells(row, all_rows, by)]  # text, never markup
        if color:
            line[-1].stylize(STATUS_STYLE.get(row.status, ""))
        table.add_row(*line)
    return table
