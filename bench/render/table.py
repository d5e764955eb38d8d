"""The terminal table: one row per configuration (`report.rows`), `mean ± half-width` over
seeds. `render_report` is `report --format table` for a file or a pipe: plain ASCII text."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from mnist_bench.analyse.rows import DEFAULT_BY, Row, cells, headers, notes, rows
from mnist_bench.core import escape
from mnist_bench.runfile.records import Record
from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mnist_bench.analyse.report import Report

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "bold red", "diverged": "bold red"}


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
    table = Table(
        title=None if title is None else escape.text(title),
        box=box.SIMPLE_HEAVY if color else box.ASCII,
    )
    for name in headers(all_rows, by):
        table.add_column(name, justify="left" if name in (*by, "status") else "right")
    for row in all_rows:
        line = [escape.text(cell) for cell in cells(row, all_rows, by)]  # never markup
        if color:
            line[-1].stylize(STATUS_STYLE.get(row.status, ""))
        table.add_row(*line)
    legend = notes(all_rows)
    if legend:
        table.caption = escape.text("\n".join(legend))
        table.caption_justify = "left"
    return table


def render_report(report: Report) -> str:
    """The report's table as plain ASCII text, 200 columns wide (for files and pipes)."""
    buffer = io.StringIO()
    Console(file=buffer, width=200, no_color=True).print(
        rows_table(report.rows, color=False, by=report.by)
    )
    return buffer.getvalue()
