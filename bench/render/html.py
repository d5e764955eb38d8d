"""One self-contained HTML page: the results table, plots as base64 PNG, and the runs it merges."""

from __future__ import annotations

import base64
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from html import escape as _escape
from typing import TYPE_CHECKING

from mnist_bench.analyse.rows import Row, cells, column_notes, headers, notes
from mnist_bench.core import escape as safe
from mnist_bench.render import figures
from mnist_bench.runfile.machine import Environment

if TYPE_CHECKING:
    from mnist_bench.analyse.report import Report

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222;
       padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td, tr.diverged td { color: #b00020; }
tr.skipped td { color: #8a6d00; }
tr.contended td:last-child { color: #8a6d00; }
img { max-width: 100%; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
.note { color: #666; font-size: 12px; }
"""


def escape(text: str) -> str:
    """`text` as HTML text or attribute value: markup escaped, control characters shown as
    escapes (`mnist_bench.core.escape.terminal`)."""
    return _escape(safe.terminal(text))


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def figure_image(fig, alt: str) -> str:
    """A matplotlib Figure as an inline PNG."""
    return image(figures.png(fig), alt)


def curves_section(rows: list[Row], by: Sequence[str]) -> list[str]:
    """Accuracy and loss per epoch, a figure per variant; nothing if no record has a curve."""
    curves = figures.epoch_curves(rows, by)
    if not curves:
        return []
    capped = f" At most {figures.MAX_CURVES} variants are shown."
    return [
        "<h2>Accuracy and loss per epoch</h2>",
        '<p class="note">Per variant, a colour per row: bold is the mean over its seeds, thin '
        "lines are the seeds; dashed, a diverged record."
        + (capped if len(curves) == figures.MAX_CURVES else "")
        + "</p>",
        '<div class="grid">',
        *(
            "<figure>"
            + figure_image(fig, "accuracy and loss per epoch: " + safe.shorten(name, 120))
            + "</figure>"
            for name, fig in curves
        ),
        "</div>",
    ]


def latency_section(rows: list[Row], by: Sequence[str]) -> list[str]:
    measured = sum(1 for r in rows if r.status == "ok" and any(x.latency_ms for x in r.records))
    shown = min(measured, figures.MAX_LATENCY_ROWS)
    return [
        "<h2>Batch-1 latency</h2>",
        '<p class="note">One query at a time (<code>predict_on_batch</code> on one image). '
        "Records keep the 50th, 95th and 99th percentiles of their queries, not each query: "
        "a line per record (each seed, and each run of a seed) runs from its p50 (dot) to its "
        "p99 (cross), its p95 marked between."
        + (f" The first {shown} of {measured} rows are shown." if shown < measured else "")
        + "</p>",
        figure_image(figures.latency_ranges(rows, by), "batch-1 latency per row"),
    ]


def parity_section(report: Report) -> list[str]:
    """Backend x backend agreement per job and the confusion-matrix difference of each pair of
    backends (`mnist_bench.analyse.parity`); nothing unless records keep their predicted labels."""
    from mnist_bench.analyse import parity
    from mnist_bench.core.errors import UserError
    from mnist_bench.render import parity as parity_render
    from mnist_bench.runfile import collect

    runs = collect.complete(report.runs)
    if not parity.has_labels(r for loaded in runs for r in loaded.run.records):
        return []
    try:
        result = parity.compare(runs)
    except UserError as exc:
        return [
            "<h2>Parity across backends</h2>",
            f'<p class="note">Not drawn: {escape(str(exc))}</p>',
        ]
    if not result.groups:
        return []
    drawn = too_large = 0
    parts = [
        "<h2>Parity across backends</h2>",
        '<p class="note">The same job (variant, seed, device, dataset and settings) on different '
        "backends: the share of test samples two backends label alike, mean over the seeds both "
        "ran (and the lowest seed); below, where their confusion matrices differ (A &minus; B, "
        "summed over those seeds: red, A counts more; blue, B does).</p>",
    ]
    for group in result.groups:
        header, body = parity_render.agreement_rows(group)
        names = result.class_names(group)
        parts += [
            f"<h3>{escape(result.title(group))} · {escape(parity_render.seeds_text(group))}</h3>",
            table(header, body, numeric=set(header[1:])),
            f'<p class="note">{escape(parity_render.accuracy_line(group))}</p>',
            '<div class="grid">',
        ]
        for pair in group.pairs:
            if drawn == figures.MAX_HEATMAPS:
                break
            if not figures.drawable(pair.difference):
                too_large += 1
                continue
            drawn += 1
            title = (
                f"{result.title(group)}: {pair.a} − {pair.b}\n"
                f"agreement {pair.mean:.4f} · {pair.disagreeing} labelled differently"
            )
            fig = figures.confusion_difference(pair.difference, names, title)
            alt = "confusion difference: " + ", ".join(title.splitlines())
            parts.append(f"<figure>{figure_image(fig, alt)}</figure>")
        parts.append("</div>")
    if drawn == figures.MAX_HEATMAPS:
        parts.append(f'<p class="note">The first {drawn} backend pairs are drawn.</p>')
    if too_large:
        parts.append(f'<p class="note">{_too_large(too_large)}</p>')
    parts += [f'<p class="note">{escape(note)}</p>' for note in result.notes]
    return parts


def _too_large(count: int) -> str:
    return (
        f"{count} confusion matri{'ces' if count > 1 else 'x'} of more than "
        f"{figures.MAX_CLASSES} classes not drawn (MNIST has 10)."
    )


def _alt(title: str) -> str:
    return "confusion matrix: " + ", ".join(safe.shorten(line, 120) for line in title.splitlines())


def table(
    header: list[str],
    body: list[list[str]],
    *,
    numeric: Collection[str] = (),
    classes: list[str] | None = None,
) -> str:
    """An HTML table; columns named in `numeric` right-aligned, one class per body row."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for i, line in enumerate(body):
        cls = f' class="{escape(classes[i])}"' if classes and classes[i] else ""
        tds = "".join(
            f'<td class="num">{escape(c)}</td>' if h in numeric else f"<td>{escape(c)}</td>"
            for h, c in zip(header, line, strict=True)
        )
        lines.append(f"<tr{cls}>{tds}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def results_table(report: Report) -> str:
    header = headers(report.rows, report.by)
    numeric = set(header) - {*report.by, "status"}
    body = [cells(row, report.rows, report.by) for row in report.rows]
    classes = [
        " ".join(c for c in (row.status, "contended" if row.contended else "") if c)
        for row in report.rows
    ]
    legend = [*notes(report.rows), *column_notes(report.rows)]
    items = "".join(f"<li>{escape(line)}</li>" for line in legend)
    return (
        table(header, body, numeric=numeric, classes=classes) + f'\n<ul class="note">{items}</ul>'
    )


def runs_table(report: Report) -> str:
    header = ["run", "machine", "started (UTC)", "status", "records", "commit", "command"]
    body = []
    for loaded in report.runs:
        run, env = loaded.run, Environment.of(loaded.run.environment)
        commit = (env.git_commit or "")[:10] + (" (dirty)" if env.git_dirty else "")
        body.append(
            [
                run.run_id,
                report.machines[run.run_id],
                run.started_utc,
                run.status,
                str(len(run.records)),
                commit,
                env.command or "",
            ]
        )
    return table(header, body, numeric={"records"})


def render_report(report: Report) -> str:
    """The page, as text; every image is inline, so the file stands alone."""
    rows, by = report.rows, report.by
    ok = [r for r in rows if r.status == "ok"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>mnist-bench report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>mnist-bench report</h1>",
        f'<p class="note">{sum(len(r.records) for r in rows)} records in {len(rows)} rows from '
        f"{len(report.runs)} run file(s) on {len(set(report.machines.values()))} machine(s); "
        f"grouped by {', '.join(by)}; cells are mean ± 95% CI half-width over seeds. Generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        "<h2>Results</h2>",
        results_table(report),
    ]
    if ok:
        parts += [
            "<h2>Accuracy against training time</h2>",
            figure_image(figures.accuracy_vs_time(rows, by), "accuracy against training time"),
            "<h2>Throughput</h2>",
            figure_image(figures.throughput_bars(rows, by), "training and inference throughput"),
        ]
    parts += curves_section(rows, by)
    if figures.has_latency(rows):
        parts += latency_section(rows, by)
    if figures.has_mfu(rows):
        parts += [
            "<h2>Model FLOPs utilisation</h2>",
            '<p class="note">Achieved GFLOP/s in steady-state training over the float32 matmul '
            "peak NumPy measured on the machine, in percent (the <i>MFU %</i> column). Recorded "
            "for CPU records only: a GPU record has no measured peak.</p>",
            figure_image(figures.mfu_bars(rows, by), "model FLOPs utilisation"),
        ]
    heatmaps = figures.row_confusion_heatmaps(rows, by, report.class_names)
    matrices = [m for m in map(figures.summed_confusion, ok) if m is not None]
    too_large = sum(1 for m in matrices if not figures.drawable(m))
    if heatmaps or too_large:
        eligible = len(matrices) - too_large
        left_out = eligible - len(heatmaps)
        parts += [
            "<h2>Confusion matrices</h2>",
            '<p class="note">Per row, summed over its seeds.'
            + (f" The first {len(heatmaps)} of {eligible} are shown." if left_out else "")
            + (f" {_too_large(too_large)}" if too_large else "")
            + "</p>",
            '<div class="grid">',
            *(f"<figure>{image(png, _alt(title))}</figure>" for title, png in heatmaps),
            "</div>",
        ]
    parts += parity_section(report)
    parts += ["<h2>Runs</h2>", runs_table(report), "</body></html>", ""]
    return "\n".join(parts)
