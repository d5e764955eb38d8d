"""The HTML report as a reader sees it: rendered by headless Chromium (Debian's `chromium`
package; .ci/run installs it) into screenshots kept as CI artifacts, and its figures' text laid
out without overlaps, checked with matplotlib's own text extents.

Screenshots go to the folder `MNIST_BENCH_SCREENSHOTS` names (default `build/screenshots/`,
git-ignored): look at them after a change to the report.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, make_record, run_cli
from mnist_bench.analyse import report as report_cmd
from mnist_bench.analyse.rows import DEFAULT_BY, rows, variant_label
from mnist_bench.render import figures

PUBLISHED = sorted((ROOT / "results" / "published" / "2026-11-24-epyc-2core").glob("*.json"))
FIXTURES = ROOT / "tests" / "fixtures" / "report"
SMALL = [FIXTURES / "amd-jax-torch.json", FIXTURES / "intel-jax.json"]
WIDTH, HEIGHT = 1280, 4000


def screenshots() -> Path:
    folder = Path(os.environ.get("MNIST_BENCH_SCREENSHOTS") or ROOT / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: apt-get install chromium (.ci/run does)"
    return found


@pytest.fixture(scope="module")
def published_rows():
    return report_cmd.build([str(p) for p in PUBLISHED], by=DEFAULT_BY).rows


def screenshot(page: Path, png: Path) -> None:
    png.unlink(missing_ok=True)
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={png}",
            f"--window-size={WIDTH},{HEIGHT}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]


@pytest.mark.parametrize(
    ("name", "files"),
    [
        # the published tables' page: the biggest to lay out (about 25 s: the slow run)
        pytest.param("published", PUBLISHED, id="published", marks=pytest.mark.slow),
        pytest.param("small", SMALL, id="small"),
    ],
)
def test_the_report_renders_in_chromium(name, files, tmp_path):
    import matplotlib.image

    assert files, "no run files to render"
    page = tmp_path / f"{name}.html"
    out = run_cli("report", *map(str, files), "--format", "html", "-o", str(page))
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert "dataset_digest=" not in html  # the dataset's name tells them apart
    for legend in ("train samples/s: ", "test accuracy: "):
        assert legend in html
    png = screenshots() / f"report-{name}.png"
    screenshot(page, png)
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    inked = (pixels[..., :3].min(axis=2) < 0.5).mean()  # dark pixels: text, lines, bars
    assert inked > 0.005, f"{png} looks blank"


def test_the_page_explains_its_flags_and_columns(published_rows):
    from mnist_bench.render import html

    built = report_cmd.build([str(p) for p in PUBLISHED], by=DEFAULT_BY)
    table = html.results_table(built)
    assert "(contended): other processes took over 25% of the CPU" in table
    assert "MFU %: achieved training FLOP/s" in table
    assert "(unstable):" not in table  # no published row is unstable: no legend line


# ---------------------------------------------------------------------- figure text layout
def _overlaps(boxes) -> list[tuple]:
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


def _tick_boxes(fig, axis: str) -> list:
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
        boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]
        assert not _overlaps(boxes), [t.get_text() for t in labels]
        out += boxes
    return out


def _laid_out(fig):
    """The figure drawn by Agg (as `figures.png` draws it), so that its text has extents."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


@pytest.mark.parametrize(
    "draw", [figures.throughput_bars, figures.mfu_bars, figures.latency_ranges]
)
def test_bar_chart_tick_labels_do_not_overlap(draw, published_rows):
    fig = _laid_out(draw(published_rows, DEFAULT_BY))
    _tick_boxes(fig, "x")
    names = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() if t.get_text()]
    assert _tick_boxes(fig, "y") and names
    assert not any("dataset_digest" in n for n in names)


def test_bar_chart_tick_labels_do_not_overlap_with_many_variants():
    """Twenty long variant names on three backends: one line each, none on another."""
    records = [
        make_record(f"variant-with-a-long-name-{i:02d}", b, train_samples_per_second=1e3 * (i + 1))
        for i in range(20)
        for b in ("jax", "torch", "tensorflow")
    ]
    records = [dataclasses.replace(r, infer_samples_per_second=2e3) for r in records]
    fig = _laid_out(figures.throughput_bars(rows(records), DEFAULT_BY))
    _tick_boxes(fig, "x")
    assert len(_tick_boxes(fig, "y")) == 20  # the axes share them: shown once, on the left


@pytest.mark.parametrize(
    "draw",
    [figures.accuracy_vs_time, figures.throughput_bars, figures.mfu_bars, figures.latency_ranges],
)
def test_legends_lie_inside_the_figure(draw, published_rows):
    fig = _laid_out(draw(published_rows, DEFAULT_BY))
    renderer = fig.canvas.get_renderer()
    whole = fig.bbox
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1, (box, whole)
        assert whole.y0 <= box.y0 and box.y1 <= whole.y1, (box, whole)


def test_a_digest_only_where_two_datasets_share_a_name():
    named = [
        make_record(dataset="mnist", digest="a" * 16),
        make_record(dataset="fashion-mnist", digest="b" * 16),
    ]
    shared = [
        make_record(dataset="mnist", digest="a" * 16),
        make_record(dataset="mnist", digest="c" * 16),
    ]
    labels = [variant_label(r, rows(named)) for r in rows(named)]
    assert labels == ["two-dense (mnist)", "two-dense (fashion-mnist)"]
    labels = [variant_label(r, rows(shared)) for r in rows(shared)]
    assert labels == [
        f"two-dense [dataset_digest={'a' * 16}]",
        f"two-dense [dataset_digest={'c' * 16}]",
    ]
