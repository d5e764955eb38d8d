"""Report plots as PNG bytes: accuracy against training time, throughput, confusion matrices.

Each reads report rows and nothing else. Figures are built with `matplotlib.figure.Figure` (no
pyplot, no global state); matplotlib and seaborn are imported here only, for `--format html`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from mnist_bench.records import Record
from mnist_bench.report.rows import Row, variant_label

MAX_HEATMAPS = 48  # one per row; past this the page says how many were left out
DPI = 80


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def series_label(row: Row, by: Sequence[str]) -> str:
    """What tells rows of one variant apart: the other group keys (backend, device, machine)."""
    return " · ".join(getattr(row, k) for k in by if k != "variant") or "all"


def _ok(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status == "ok"]


def accuracy_vs_time(rows: list[Row], by: Sequence[str]) -> bytes:
    """Scatter: test accuracy against training seconds; colour per series, marker per variant.

    Each seed is a small point; each row's mean is a large one with 95% CI error bars.
    """
    import seaborn as sns

    rows = _ok(rows)
    series = list(dict.fromkeys(series_label(r, by) for r in rows))
    variants = list(dict.fromkeys(variant_label(r, rows) for r in rows))
    colors = dict(zip(series, sns.color_palette("tab10", len(series)), strict=True))
    markers = dict(zip(variants, "osD^vP*Xhp<>" * 4, strict=False))
    fig = _figure(10, 6)
    ax = fig.subplots()
    for row in rows:
        color, marker = colors[series_label(row, by)], markers[variant_label(row, rows)]
        points = [
            (r.train_seconds, r.test_accuracy)
            for r in row.records
            if r.train_seconds is not None and r.test_accuracy is not None
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, color=color, marker=marker, s=18, alpha=0.35, linewidths=0)
        t, a = row.summary("train_seconds"), row.summary("test_accuracy")
        ax.errorbar(
            t.mean,
            a.mean,
            xerr=t.half_width or 0,
            yerr=a.half_width or 0,
            color=color,
            marker=marker,
            markersize=9,
            markeredgecolor="white",
            capsize=3,
            lw=1,
        )
    for name, color in colors.items():
        ax.plot([], [], color=color, marker="o", ls="", label=name)
    if "variant" in by:
        for name, marker in markers.items():
            ax.plot([], [], color="grey", marker=marker, ls="", label=name)
    ax.set_xlim(left=0)  # an interval over two seeds can reach below zero; time cannot
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy against training time (large: mean ± 95% CI; small: each seed)")
    ax.grid(alpha=0.3)
    fig.legend(
        loc="outside lower center",
        ncols=min(4, len(series) + len(markers)),
        fontsize=8,
        frameon=False,
    )
    return _png(fig)


def throughput_bars(rows: list[Row], by: Sequence[str]) -> bytes:
    """Two bar charts, training and inference samples/s: a group of bars per variant, one bar
    per series (backend, device, machine), with 95% CI error bars."""
    import numpy as np
    import seaborn as sns
    from matplotlib.ticker import StrMethodFormatter

    rows = _ok(rows)
    series = list(dict.fromkeys(series_label(r, by) for r in rows))
    groups = list(dict.fromkeys(variant_label(r, rows) if "variant" in by else "all" for r in rows))
    colors = sns.color_palette("tab10", len(series))
    width = 0.8 / len(series)
    fig = _figure(max(9, 1.2 * len(groups) * max(1, len(series) / 3)), 7.5)
    axes = fig.subplots(2, 1)
    for ax, metric, title in (
        (axes[0], "train_samples_per_second", "Training throughput (steady state)"),
        (axes[1], "infer_samples_per_second", "Inference throughput (predict over the test set)"),
    ):
        for i, (name, color) in enumerate(zip(series, colors, strict=True)):
            heights = np.full(len(groups), np.nan)
            errors = np.zeros(len(groups))
            for row in rows:
                summary = row.summary(metric)
                if series_label(row, by) != name or summary is None:
                    continue
                g = groups.index(variant_label(row, rows) if "variant" in by else "all")
                heights[g], errors[g] = summary.mean, summary.half_width or 0
            x = np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width
            ax.bar(x, heights, width, yerr=errors, color=color, label=name, capsize=2)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.set_ylabel("samples/s")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=min(4, len(series)),
        fontsize=8,
        frameon=False,
    )
    return _png(fig)


def summed_confusion(row: Row) -> list[list[int]] | None:
    """The confusion matrices of a row's records added up (counts over all its seeds)."""
    matrices = [r.confusion_matrix for r in row.records if r.confusion_matrix]
    if not matrices:
        return None
    return [
        [sum(cells) for cells in zip(*rows, strict=True)] for rows in zip(*matrices, strict=True)
    ]


def confusion_heatmap_png(
    matrix: list[list[int]],
    class_names: Sequence[str] | None,
    title: str,
    size: tuple[float, float] = (5.2, 4.6),
) -> bytes:
    """Seaborn heatmap of one confusion matrix, counts annotated, as PNG bytes (drawn for the
    report's rows and for each record of a run, `run_figures.save_confusion_heatmap`)."""
    import seaborn as sns

    if class_names is None or len(class_names) != len(matrix):
        class_names = [str(i) for i in range(len(matrix))]
    fig = _figure(*size)
    ax = fig.subplots()
    sns.heatmap(
        matrix,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        xticklabels=class_names,
        yticklabels=class_names,
        annot_kws={"size": 7},
    )
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Truth")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def row_confusion_heatmaps(
    rows: list[Row],
    by: Sequence[str],
    class_names: Callable[[Record], Sequence[str] | None],
) -> list[tuple[str, bytes]]:
    """(caption, PNG) per ok row with confusion matrices (summed over its seeds), at most
    `MAX_HEATMAPS`."""
    out = []
    for row in _ok(rows):
        matrix = summed_confusion(row)
        if matrix is None:
            continue
        if len(out) == MAX_HEATMAPS:
            break
        name = " · ".join(
            variant_label(row, rows) if k == "variant" else getattr(row, k) for k in by
        )
        total = sum(map(sum, matrix))
        accuracy = sum(matrix[i][i] for i in range(len(matrix))) / total if total else 0.0
        seeds = len(row.records)
        title = f"{name}\naccuracy {accuracy:.4f} · {seeds} seed{'s' * (seeds > 1)} summed"
        out.append((title, confusion_heatmap_png(matrix, class_names(row.records[0]), title)))
    return out
