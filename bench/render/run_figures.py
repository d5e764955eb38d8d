"""The figures `run` draws beside its run file: per record, the confusion-matrix heatmap and a
grid of misclassified test digits; per variant, its accuracy and loss per epoch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from mnist_bench.core.escape import figure_label
from mnist_bench.runfile.records import Record


def slug(name: str, limit: int = 80) -> str:
    """`name` as part of a file name: no separators or odd characters, not too long (a variant
    name read from a run file can be anything, `../x` included)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", name).strip("-")[:limit]


def stem(record: Record) -> str:
    repeat = f"-repeat{record.repeat}" if record.repeat else ""
    return f"{slug(record.variant)}-{record.backend}-{record.device}-seed{record.seed}{repeat}"


def _class_name(class_names: tuple[str, ...], index: int) -> str:
    return str(class_names[index]) if index < len(class_names) else str(index)


def save_confusion_heatmap(record: Record, class_names: tuple[str, ...], path: Path) -> Path:
    """The record's confusion matrix as a PNG heatmap with annotated counts, written to `path`."""
    from mnist_bench.render import figures

    if record.confusion_matrix is None:
        raise ValueError(f"{record.job.label()} has no confusion matrix")
    title = f"{record.variant} · {record.backend} · {record.device} · seed {record.seed}" + (
        f" — accuracy {record.test_accuracy:.4f}" if record.test_accuracy is not None else ""
    )
    path.write_bytes(
        figures.confusion_heatmap_png(record.confusion_matrix, class_names, title, size=(8, 6.5))
    )
    return path


def save_misclassified_grid(
    record: Record, images: np.ndarray, class_names: tuple[str, ...], path: Path
) -> Path:
    """Up to 25 misclassified test images with their true and predicted labels.

    One mosaic image on one axes: 25 subplots would take several times as long to draw.
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state to close

    wrong = [m for m in record.misclassified if m[0] < len(images)][:25]
    cell, pad = 28, 12  # pixels per digit, and room for its label below it
    mosaic = np.zeros((5 * (cell + pad), 5 * (cell + 4)), dtype=np.uint8)
    fig = Figure(figsize=(7.5, 8.5))
    ax = fig.subplots()
    for k, (index, truth, predicted) in enumerate(wrong):
        row, col = divmod(k, 5)
        top, left = row * (cell + pad), col * (cell + 4) + 2
        mosaic[top : top + cell, left : left + cell] = images[index]
        ax.text(
            left + cell / 2,
            top + cell + 1,
            f"true {_class_name(class_names, truth)}\npred {_class_name(class_names, predicted)}",
            ha="center",
            va="top",
            fontsize=8,
        )
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest")
    ax.axis("off")
    title = f"Misclassified: {record.variant} · {record.backend} · seed {record.seed}"
    ax.set_title(figure_label(title, 120))
    fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.02)
    fig.savefig(path, dpi=80)
    return path


def save_epoch_curves(records: list[Record], folder: Path) -> list[Path]:
    """Accuracy and loss per epoch, a figure per variant (`figures.epoch_curves`: its backends
    side by side, its seeds as a mean and thin lines), as `folder/<variant>-curves.png`."""
    from mnist_bench.analyse.rows import DEFAULT_BY, rows
    from mnist_bench.render import figures

    paths: list[Path] = []
    for name, fig in figures.epoch_curves(rows(records), DEFAULT_BY):
        stem = slug(name)  # `two-dense [epochs=5]`
        path = folder / f"{stem}-curves.png"
        if path in paths:  # two labels alike once slugged
            path = folder / f"{stem}-{len(paths)}-curves.png"
        fig.savefig(path, dpi=figures.DPI)
        paths.append(path)
    return paths


def draw_run_figures(
    records: list[Record], x_test: np.ndarray, class_names: tuple[str, ...], folder: Path
) -> list[Path]:
    """Into `folder` (created): the confusion matrix and misclassified digits of every finished
    record, and the per-epoch curves of every variant that has one."""
    from mnist_bench.render.figures import drawable

    done = [
        r
        for r in records
        if r.status == "ok" and r.confusion_matrix and drawable(r.confusion_matrix)
    ]
    curved = [r for r in records if r.status in ("ok", "diverged") and r.loss_curve]
    if not done and not curved:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = save_epoch_curves(curved, folder)
    for record in done:
        paths.append(
            save_confusion_heatmap(record, class_names, folder / f"{stem(record)}-confusion.png")
        )
        paths.append(
            save_misclassified_grid(
                record, x_test, class_names, folder / f"{stem(record)}-errors.png"
            )
        )
    return paths
