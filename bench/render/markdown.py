"""GitHub-flavoured Markdown table of report rows: pastes into a README or a CI job summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mnist_bench.analyse.rows import DEFAULT_BY, Row, cells, headers

if TYPE_CHECKING:
    from mnist_bench.commands.report import Report


def escape(cell: str) -> str:
    """A cell that cannot break the table: pipes escaped, line breaks flattened."""
    return " ".join(cell.replace("|", "\\|").split())


def render(rows: list[Row], by: Sequence[str] = DEFAULT_BY) -> str:
    """The table: key columns left-aligned, seeds and metrics right-aligned."""
    names = headers(rows, by)
    align = ["---" if name in (*by, "status") else "---:" for name in names]
    lines = ["| " + " | ".join(names) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(escape(c) for c in cells(row, rows, by)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_report(report: Report) -> str:
    return render(report.rows, report.by)
