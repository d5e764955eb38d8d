"""The output formats of `mnist-bench report`, registered by name in `FORMATS`.

A format is one module with `render_report(report) -> str` (and `render_report_raw`, one line
per record, where it has `--raw`) plus one line here. Modules are imported only when their format
is used, so `report` stays quick and only `--format html` imports matplotlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnist_bench.commands.report import Report


@dataclass(frozen=True)
class Format:
    """One output format.

    Attributes:
        module: the module that renders it, imported on first use.
        help: what it gives, for `--format` help.
        raw: it also renders one line per record (`--raw`).
    """

    module: str
    help: str
    raw: bool = False

    def renderer(self, *, raw: bool = False) -> Callable[[Report], str]:
        name = "render_report_raw" if raw else "render_report"
        return getattr(importlib.import_module(self.module), name)


FORMATS: dict[str, Format] = {
    "table": Format("mnist_bench.render.table", "rich; plain ASCII when piped"),
    "markdown": Format("mnist_bench.render.markdown", "GitHub table"),
    "csv": Format(
        "mnist_bench.render.csvout", "one row per group: n, mean, std, 95% CI per metric", raw=True
    ),
    "html": Format("mnist_bench.render.html", "one self-contained page with plots"),
}
RAW = tuple(name for name, f in FORMATS.items() if f.raw)  # the formats `--raw` goes with


def help_text() -> str:
    """`--format` help: each format and what it gives (`%` escaped for argparse)."""
    parts = [f"{name} ({f.help.replace('%', '%%')})" for name, f in FORMATS.items()]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def render(report: Report, name: str, *, raw: bool = False) -> str:
    """The report as text in format `name` (table: plain ASCII)."""
    return FORMATS[name].renderer(raw=raw)(report)
