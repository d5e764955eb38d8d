"""Report plots as matplotlib Figures: accuracy against training time, throughput, accuracy and
loss per epoch, batch-1 latency, MFU, confusion matrices and the difference of two (`parity`);
`png` turns one into PNG bytes.

Each reads report rows and nothing else. Figures are built with `matplotlib.figure.Figure` (no
pyplot, no global state); matplotlib and seaborn are imported here only, when a figure is drawn
(`--format html`, `run`'s figures).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeGuard

from mnist_bench.analyse.rows import Row, variant_label
from mnist_bench.core import identity
from mnist_bench.core.escape import figure_label
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_HEATMAPS = 48  # one per row; past this the page says how many were left out
MAX_CURVES = 48  # one figure per variant
MAX_LATENCY_ROWS = 64  # one line of the latency figure per row
MAX_CLASSES = 100  # a larger confusion matrix is not drawn (MNIST has 10 classes)
MAX_ANNOTATED = 30  # classes up to which each cell of a heatmap shows its count
DPI = 80
PERCENTILE_MARKERS = (("p50", "o", 28), ("p95", "|", 70), ("p99", "x", 28))  # key, marker, size


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def series_label(row: Row, by: Sequence[str]) -> str:
    """What tells rows of one variant apart: the other group keys (backend, device, machine)."""
    return " · ".join(getattr(row, k) for k in by if k != "variant") or "all"


def row_label(row: Row, rows: list[Row], by: Sequence[str]) -> str:
    """The row's group keys, `two-dense · jax · cpu`."""
    return " · ".join(variant_label(row, rows) if k == "variant" else getattr(row, k) for k in by)


def _group(row: Row, rows: list[Row], by: Sequence[str]) -> str:
    """The variant (with its configuration) a row belongs to; `all` when rows merge variants."""
    return variant_label(row, rows) if "variant" in by else "all"


def _legend_columns(fig: Figure, labels: Sequence[str]) -> int:
    """As many legend columns as fit the figure's width at font size 8 (about 5.5 px a
    character, plus the marker), so that the legend never runs past the figure's edges."""
    width_px = fig.get_figwidth() * DPI
    widest = max((len(label) for label in labels), default=1) * 5.5 + 40
    return max(1, min(len(labels), int(width_px // widest)))


def _legend_below(fig: Figure, handles: list, labels: list[str]) -> None:
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=_legend_columns(fig, labels),
        fontsize=8,
        frameon=False,
    )


def _ok(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status == "ok"]


def _colors(rows: list[Row], by: Sequence[str]) -> dict[str, tuple]:
    """One colour per series of all `rows` (whatever their status), in order of appearance: a
    series keeps its colour in every figure of a report, whichever rows each one draws."""
    import seaborn as sns

    series = list(dict.fromkeys(series_label(r, by) for r in rows))
    return dict(zip(series, sns.color_palette("tab10", len(series)), strict=True))


def accuracy_vs_time(rows: list[Row], by: Sequence[str]) -> Figure:
    """Scatter: test accuracy against training seconds; colour per series, marker per variant.

    Each seed is a small point; each row's mean is a large one with 95% CI error bars.
    """
    palette, rows = _colors(rows, by), _ok(rows)
    colors = {s: palette[s] for s in dict.fromkeys(series_label(r, by) for r in rows)}
    variants = list(dict.fromkeys(variant_label(r, rows) for r in rows))
    markers = dict(zip(variants, itertools.cycle("osD^vP*Xhp<>"), strict=False))
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
        if t is None or a is None:  # never: each point above has both values
            continue
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
        ax.plot([], [], color=color, marker="o", ls="", label=figure_label(name))
    if "variant" in by:
        for name, marker in markers.items():
            ax.plot([], [], color="grey", marker=marker, ls="", label=figure_label(name))
    ax.set_xlim(left=0)  # an interval over two seeds can reach below zero; time cannot
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy against training time (large: mean ± 95% CI; small: each seed)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def _grouped_bars(
    ax: Axes, rows: list[Row], by: Sequence[str], metric: str, palette: dict, scale: float = 1.0
) -> None:
    """Horizontal bars: a group per variant (its name on the left, one per line, so names never
    overlap), one bar per series of `rows` (labelled for the legend), with 95% CI error bars; a
    row without the metric leaves a gap."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    series = list(dict.fromkeys(series_label(r, by) for r in rows))
    groups = list(dict.fromkeys(_group(r, rows, by) for r in rows))
    height = 0.8 / len(series)
    for i, name in enumerate(series):
        heights = np.full(len(groups), np.nan)
        errors = np.zeros(len(groups))
        for row in rows:
            summary = row.summary(metric)
            if series_label(row, by) != name or summary is None:
                continue
            g = groups.index(_group(row, rows, by))
            heights[g], errors[g] = summary.mean * scale, (summary.half_width or 0) * scale
        y = np.arange(len(groups)) + (i - (len(series) - 1) / 2) * height
        ax.barh(
            y,
            heights,
            height,
            xerr=errors,
            color=palette[name],
            label=figure_label(name),
            capsize=2,
        )
    ax.set_yticks(np.arange(len(groups)), [figure_label(g) for g in groups])
    ax.set_ylim(len(groups) - 0.5, -0.5)  # the first variant on top
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(axis="x", alpha=0.3)


def _bars_height(rows: list[Row], by: Sequence[str]) -> float:
    """Inches for the bars of `rows`: a group per variant, a bar per series in each."""
    groups = {_group(r, rows, by) for r in rows}
    series = {series_label(r, by) for r in rows}
    return 1.8 + len(groups) * max(0.35, 0.16 * len(series))


def throughput_bars(rows: list[Row], by: Sequence[str]) -> Figure:
    """Two bar charts, training and inference samples/s: a group of bars per variant, one bar
    per series (backend, device, machine), with 95% CI error bars."""
    from matplotlib.ticker import StrMethodFormatter

    palette, rows = _colors(rows, by), _ok(rows)
    fig = _figure(12, _bars_height(rows, by))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, title in (
        (axes[0], "train_samples_per_second", "Training throughput (steady state)"),
        (axes[1], "infer_samples_per_second", "Inference throughput (predict over the test set)"),
    ):
        _grouped_bars(ax, rows, by, metric, palette)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.set_xlabel("samples/s")
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def has_mfu(rows: list[Row]) -> bool:
    return any(r.mfu is not None for row in _ok(rows) for r in row.records)


def mfu_bars(rows: list[Row], by: Sequence[str]) -> Figure:
    """MFU in percent: achieved GFLOP/s in steady-state training over the machine's measured
    float32 matmul peak, a group of bars per variant, one bar per series, 95% CI error bars."""
    palette = _colors(rows, by)
    rows = [r for r in _ok(rows) if r.values("mfu")]
    fig = _figure(10, _bars_height(rows, by))
    ax = fig.subplots()
    _grouped_bars(ax, rows, by, "mfu", palette, scale=100.0)
    ax.set_xlabel("MFU (% of peak)")
    ax.set_title("Model FLOPs utilisation in training (CPU; peak: NumPy float32 matmul)")
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def _seed_curves(row: Row, name: str) -> list[list[float]]:
    """One curve per seed (the mean of its repeats, epoch by epoch); a missing value (a loss
    that was not finite, an epoch a run did not reach) is NaN."""
    out = []
    for repeats in identity.per_seed(row.records).values():
        curves = [getattr(r, name) for r in repeats if getattr(r, name)]
        if curves:
            out.append(_nanmean(curves))
    return out


def _nanmean(curves: Sequence[Sequence[float | None]]) -> list[float]:
    """The mean, epoch by epoch, of curves of any lengths, over the values each epoch has."""
    out = []
    for epoch in range(max(map(len, curves))):
        values = [v for v in (c[epoch] for c in curves if epoch < len(c)) if _finite(v)]
        out.append(sum(values) / len(values) if values else math.nan)
    return out


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def epoch_curves(rows: list[Row], by: Sequence[str]) -> list[tuple[str, Figure]]:
    """(variant, Figure) per variant, at most `MAX_CURVES`: test accuracy after each epoch
    (left) and training loss (right), one colour per series (backend, device, machine).

    A row of several seeds is a bold mean over its seeds and a thin line per seed; a row of one
    seed, one bold line. Diverged records are rows of their own, drawn dashed with crosses up to
    the epoch their loss stopped being finite.
    """
    from matplotlib.ticker import MaxNLocator

    palette = _colors(rows, by)
    drawn = [
        r for r in rows if r.status in ("ok", "diverged") and any(x.loss_curve for x in r.records)
    ]
    out: list[tuple[str, Figure]] = []
    for group in dict.fromkeys(_group(r, drawn, by) for r in drawn):
        if len(out) == MAX_CURVES:
            break
        fig = _figure(10, 3.8)
        axes = fig.subplots(1, 2)
        last = 1  # the last epoch drawn
        for row in (r for r in drawn if _group(r, drawn, by) == group):
            color = palette[series_label(row, by)]
            label = figure_label(series_label(row, by))
            style, marker = ("--", "X") if row.status == "diverged" else ("-", "o")
            if row.status == "diverged":
                label += " (diverged)"
            for ax, name in zip(axes, ("accuracy_curve", "loss_curve"), strict=True):
                curves = _seed_curves(row, name)
                if not curves:
                    continue
                if len(curves) > 1:
                    for curve in curves:
                        epochs = range(1, len(curve) + 1)
                        ax.plot(
                            epochs,
                            curve,
                            color=color,
                            ls=style,
                            lw=0.8,
                            marker=".",
                            ms=3,
                            alpha=0.35,
                        )
                mean = _nanmean(curves)
                last = max(last, len(mean))
                ax.plot(
                    range(1, len(mean) + 1),
                    mean,
                    color=color,
                    ls=style,
                    lw=2,
                    marker=marker,
                    ms=4,
                    label=label,
                )
        for ax, ylabel in zip(axes, ("test accuracy", "training loss"), strict=True):
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.set_xlim(0.5, last + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0].set_title("Test accuracy after each epoch", fontsize=10)
        axes[1].set_title("Training loss (epoch mean)", fontsize=10)
        fig.suptitle(figure_label(group, 120), fontsize=11)
        handles, labels = axes[1].get_legend_handles_labels()
        if not handles:
            handles, labels = axes[0].get_legend_handles_labels()
        _legend_below(fig, handles, labels)
        out.append((group, fig))
    return out


def has_latency(rows: list[Row]) -> bool:
    return any(r.latency_ms for row in _ok(rows) for r in row.records)


def latency_ranges(rows: list[Row], by: Sequence[str]) -> Figure:
    """Batch-1 latency per row, at most `MAX_LATENCY_ROWS`: one line per record (each seed, and
    each run of a seed) from its p50 to its p99, p95 marked on it; colour per series (backend,
    device, machine).

    Records keep these three percentiles, not each query's time, so this is the spread a
    record's queries had and how it differs between records, not a full distribution. The axis is
    logarithmic when latencies span more than a factor of 20.
    """
    from matplotlib.lines import Line2D

    palette, ok = _colors(rows, by), _ok(rows)
    drawn = [r for r in ok if any(x.latency_ms for x in r.records)][:MAX_LATENCY_ROWS]
    lines = [sum(1 for x in r.records if x.latency_ms) for r in drawn]
    fig = _figure(10, 1.6 + sum(max(0.42, 0.14 * n) for n in lines))
    ax = fig.subplots()
    low, high = float("inf"), 0.0
    for y, row in enumerate(drawn):
        color = palette[series_label(row, by)]
        measured = [x.latency_ms for x in row.records if x.latency_ms]
        step = 0.5 / max(1, len(measured) - 1)
        for i, latency in enumerate(measured):
            at = y - 0.25 + i * step if len(measured) > 1 else y
            ax.plot([latency["p50"], latency["p99"]], [at, at], color=color, lw=1.5)
            for key, marker, size in PERCENTILE_MARKERS:
                ax.scatter([latency[key]], [at], color=color, marker=marker, s=size, zorder=3)
            low, high = min(low, latency["p50"]), max(high, latency["p99"])
    ax.set_yticks(range(len(drawn)), [figure_label(row_label(r, ok, by)) for r in drawn])
    ax.set_ylim(len(drawn) - 0.5, -0.5)  # the first row on top
    if high > 20 * low:
        ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency (ms)")
    ax.set_title("Batch-1 latency: a line per record (seed, run) from p50 to p99")
    ax.grid(axis="x", alpha=0.3)
    keys = [
        Line2D([], [], color="grey", marker=marker, ls="", label=key)
        for key, marker, _ in PERCENTILE_MARKERS
    ]
    _legend_below(fig, keys, [str(h.get_label()) for h in keys])
    return fig


def summed_confusion(row: Row) -> list[list[int]] | None:
    """The confusion matrices of a row's records added up (counts over all its seeds)."""
    matrices = [r.confusion_matrix for r in row.records if r.confusion_matrix]
    if not matrices:
        return None
    matrices = [m for m in matrices if len(m) == len(matrices[0])]  # hand-edited files differ
    return [
        [sum(cells) for cells in zip(*rows, strict=True)] for rows in zip(*matrices, strict=True)
    ]


def confusion_heatmap_png(
    matrix: list[list[int]],
    class_names: Sequence[str] | None,
    title: str,
    size: tuple[float, float] = (5.2, 4.6),
) -> bytes:
    """`confusion_heatmap` as PNG bytes (drawn for the report's rows and for each record of a
    run, `run_figures.save_confusion_heatmap`)."""
    return png(confusion_heatmap(matrix, class_names, title, size))


def confusion_heatmap(
    matrix: list[list[int]],
    class_names: Sequence[str] | None,
    title: str,
    size: tuple[float, float] = (5.2, 4.6),
):
    """Seaborn heatmap of one confusion matrix, counts annotated: a matplotlib `Figure` (the
    Python API's `Results.confusion_matrix`)."""
    import seaborn as sns

    class_names = _tick_labels(class_names, len(matrix))
    fig = _figure(*size)
    ax = fig.subplots()
    sns.heatmap(
        matrix,
        annot=len(matrix) <= MAX_ANNOTATED,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        xticklabels=class_names,
        yticklabels=class_names,
        annot_kws={"size": 7},
    )
    _label_confusion_axes(ax, title)
    return fig


def drawable(matrix: Sequence[Sequence[int]]) -> bool:
    """Whether a confusion matrix is small enough to draw (`MAX_CLASSES`)."""
    return len(matrix) <= MAX_CLASSES


def _tick_labels(class_names: Sequence[str] | None, size: int) -> list[str]:
    if class_names is None or len(class_names) != size:
        return [str(i) for i in range(size)]
    return [figure_label(name, 20) for name in class_names]


def _label_confusion_axes(ax, title: str) -> None:
    """Axis labels and title shared by the confusion heatmaps: truth down, prediction across."""
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Truth")
    ax.set_title("\n".join(figure_label(line, 120) for line in title.split("\n")), fontsize=9)


def confusion_difference(
    difference: list[list[int]],
    class_names: Sequence[str] | None,
    title: str,
    size: tuple[float, float] = (5.2, 4.6),
) -> Figure:
    """Heatmap of one confusion matrix minus another (`parity`): red where the first counts
    more, blue where the second does, white where they agree; non-zero cells annotated."""
    import seaborn as sns

    class_names = _tick_labels(class_names, len(difference))
    largest = max((abs(v) for row in difference for v in row), default=0) or 1
    fig = _figure(*size)
    ax = fig.subplots()
    sns.heatmap(
        difference,
        annot=[[f"{v:+d}" if v else "" for v in row] for row in difference]
        if len(difference) <= MAX_ANNOTATED
        else False,
        fmt="",
        cmap="RdBu_r",
        vmin=-largest,
        vmax=largest,
        center=0,
        cbar=False,
        linewidths=0.5,
        linecolor="#eee",
        ax=ax,
        xticklabels=class_names,
        yticklabels=class_names,
        annot_kws={"size": 7},
    )
    _label_confusion_axes(ax, title)
    return fig


def row_confusion_heatmaps(
    rows: list[Row],
    by: Sequence[str],
    class_names: Callable[[Record], Sequence[str] | None],
) -> list[tuple[str, bytes]]:
    """(caption, PNG) per ok row with a confusion matrix of at most `MAX_CLASSES` classes
    (summed over its seeds), at most `MAX_HEATMAPS`."""
    out: list[tuple[str, bytes]] = []
    for row in _ok(rows):
        matrix = summed_confusion(row)
        if matrix is None or not drawable(matrix):
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
