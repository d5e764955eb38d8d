"""GitHub-flavoured Markdown table of report rows: pastes into a README or a CI job summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mnist_bench.analyse.rows import DEFAULT_BY, Row, cells, headers, notes
from mnist_bench.core import escape as safe

if TYPE_CHECKING:
    from mnist_bench.analyse.report import Report


def escape(cell: str) -> str:
    """A cell that cannot break the table nor put HTML, an image or a link into the page
    (`mnist_bench.core.escape.markdown`)."""
    return safe.markdown(cell)


def render(rows: list[Row], by: Sequence[str] = DEFAULT_BY) -> str:
    """The table: key columns left-aligned, seeds and metrics right-aligned."""
    names = headers(rows, by)
    align = ["---" if name in (*by, "status") else "---:" for name in names]
    lines = ["| " + " | ".join(escape(n) for n in names) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(escape(c) for c in cells(row, rows, by)) + " |" for row in rows]
    legend = notes(rows)
    if legend:
        lines += ["", *(f"- {escape(note)}" for note in legend)]
    return "\n".join(lines) + "\n"


def render_report(report: Report) -> str:
    return render(report.rows, report.by)
