"""Plots of what records hold beyond the headline numbers: accuracy and loss per epoch, batch-1
latency, MFU (a table column where records have it, a bar chart in the HTML report).

On the stored real run `amd-jax-torch.json` (jax and torch; single-dense, two-dense, cnn; seeds 0
and 1; one epoch each) and on records built by hand where a test needs several epochs.
"""

from __future__ import annotations

import base64
import math
import re

import pytest
from conftest import ROOT, cli_importing_none_of, make_record
from mnist_bench import cli
from mnist_bench.analyse import compare
from mnist_bench.analyse import report as report_cmd
from mnist_bench.analyse.rows import DEFAULT_BY, rows
from mnist_bench.core.metrics import HEADLINE
from mnist_bench.render import figures, run_figures
from mnist_bench.render.markdown import render as markdown
from mnist_bench.render.table import records_table

FIXTURES = ROOT / "tests" / "fixtures" / "report"
AMD = FIXTURES / "amd-jax-torch.json"
T_975_1 = 12.706204736174694  # Student t, 97.5% quantile, 1 degree of freedom


@pytest.fixture(scope="module")
def amd_rows():
    return report_cmd.build([str(AMD)], by=DEFAULT_BY).rows


def curve_records():
    """two-dense over 3 epochs on jax (seeds 0 and 1) and torch (seed 0), and a diverged jax
    record whose loss stopped being finite in epoch 2."""
    return [
        make_record(seed=0, accuracy_curve=[0.90, 0.94, 0.96], loss_curve=[0.5, 0.3, 0.2]),
        make_record(seed=1, accuracy_curve=[0.80, 0.92, 0.95], loss_curve=[0.7, 0.4, 0.3]),
        make_record(backend="torch", accuracy_curve=[0.9, 0.95, 0.97], loss_curve=[0.4, 0.2, 0.1]),
        make_record(seed=2, status="diverged", accuracy_curve=[0.5], loss_curve=[2.0, None]),
    ]


def line_data(ax) -> dict[str, list[float]]:
    """Each labelled line's y values (the bold means), by label."""
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}


# ------------------------------------------------------------------------------ MFU column
def test_table_and_markdown_have_an_mfu_column(amd_rows):
    table = records_table([r for row in amd_rows for r in row.records], color=False)
    headers = [c.header for c in table.columns]
    assert headers[-2:] == ["MFU %", "status"]
    header, rule, *body = markdown(amd_rows).splitlines()
    assert header.endswith("| MFU % | status |") and rule.endswith("| ---: | --- |")
    # two-dense on torch: MFU 0.022877 and 0.025527, in percent
    mean, std = (0.02287724967816852 + 0.025527293071225157) / 2, 0.00265004 / math.sqrt(2)
    half = T_975_1 * std / math.sqrt(2)
    cell = next(line for line in body if "| two-dense | torch |" in line).split(" | ")[-2]
    assert cell == f"{mean * 100:.2f} ± {half * 100:.2f}" == "2.42 ± 1.68"


def test_no_mfu_column_without_mfu():
    """GPU records and machines without a measured peak carry no MFU: no empty column."""
    records = [make_record(test_accuracy=0.9), make_record(backend="torch", test_accuracy=0.8)]
    header = markdown(rows(records)).splitlines()[0]
    assert "MFU" not in header and header.endswith("| infer samples/s | status |")


def test_mfu_is_not_judged():
    """`compare` and `check` judge the headline metrics only, and MFU is not one of them."""
    assert "mfu" not in [m.name for m in HEADLINE]
    assert "mfu" not in [m.name for m in compare.METRICS]


def test_table_with_mfu_imports_no_matplotlib():
    out = cli_importing_none_of(("matplotlib", "seaborn"), "report", str(AMD), "--format", "table")
    assert "MFU %" in out.stdout


# ---------------------------------------------------------------------------------- figures
def test_epoch_curves_one_figure_per_variant(amd_rows):
    curves = figures.epoch_curves(amd_rows, DEFAULT_BY)
    assert [name for name, _ in curves] == ["single-dense", "two-dense", "cnn"]
    for _, fig in curves:
        accuracy, loss = fig.axes
        # jax and torch, 2 seeds each: a thin line per seed and a bold mean per row
        assert len(accuracy.get_lines()) == len(loss.get_lines()) == 2 * (2 + 1)
    accuracy, loss = curves[0][1].axes
    assert line_data(accuracy)["jax · cpu"] == pytest.approx([(0.716 + 0.686) / 2])
    assert line_data(loss)["torch · cpu"] == pytest.approx([(1.8588106632 + 1.8756098747) / 2])


def test_epoch_curves_over_epochs_with_a_diverged_record():
    (name, fig), *others = figures.epoch_curves(rows(curve_records()), DEFAULT_BY)
    assert name == "two-dense" and not others
    accuracy, loss = fig.axes
    # jax: 2 seeds and their mean; torch: one seed, one line; the diverged record, one line
    assert len(accuracy.get_lines()) == len(loss.get_lines()) == 3 + 1 + 1
    means = line_data(accuracy)
    assert means["jax · cpu"] == pytest.approx([0.85, 0.93, 0.955])
    assert means["torch · cpu"] == pytest.approx([0.9, 0.95, 0.97])
    diverged = line_data(loss)["jax · cpu (diverged)"]
    assert diverged[0] == 2.0 and math.isnan(diverged[1])  # a loss that was not finite: a gap
    dashed = [line for line in loss.get_lines() if line.get_label().endswith("(diverged)")]
    assert dashed[0].get_linestyle() == "--"
    assert accuracy.get_xlim() == (0.5, 3.5)


def test_latency_a_line_per_record(amd_rows):
    fig = figures.latency_ranges(amd_rows, DEFAULT_BY)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 12  # 3 variants x 2 backends x 2 seeds
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:2] == ["single-dense · jax · cpu", "single-dense · torch · cpu"]
    assert len(labels) == 6
    first = ax.get_lines()[0].get_xdata()  # single-dense, jax, seed 0: p50 to p99
    assert list(first) == pytest.approx([0.11493599959067069, 0.16812054062029344])
    assert ax.get_xscale() == "log"  # 0.114 ms to 3.1 ms


def test_mfu_bars(amd_rows):
    fig = figures.mfu_bars(amd_rows, DEFAULT_BY)
    (ax,) = fig.axes
    bars = [p.get_width() for c in ax.containers if hasattr(c, "patches") for p in c.patches]
    assert len(bars) == 3 * 2  # a bar per variant and backend
    torch_two_dense = 100 * (0.02287724967816852 + 0.025527293071225157) / 2
    assert bars[3 + 1] == pytest.approx(torch_two_dense)  # torch's bars follow jax's


def test_existing_figures_are_figures(amd_rows):
    assert len(figures.accuracy_vs_time(amd_rows, DEFAULT_BY).axes) == 1
    assert len(figures.throughput_bars(amd_rows, DEFAULT_BY).axes) == 2


# ------------------------------------------------------------------------------ HTML report
def test_html_has_curves_latency_and_mfu(tmp_path):
    page = tmp_path / "report.html"
    assert cli.main(["report", str(AMD), "--format", "html", "-o", str(page)]) == 0
    text = page.read_text()
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]*)"', text)
    images = {alt: data for data, alt in found}
    for heading in ("Accuracy and loss per epoch", "Batch-1 latency", "Model FLOPs utilisation"):
        assert f"<h2>{heading}</h2>" in text
    wanted = [
        *(f"accuracy and loss per epoch: {v}" for v in ("single-dense", "two-dense", "cnn")),
        "batch-1 latency per row",
        "model FLOPs utilisation",
    ]
    for alt in wanted:
        assert base64.b64decode(images[alt]).startswith(b"\x89PNG"), alt
    assert "<th>MFU %</th>" in text and '<td class="num">2.42 ± 1.68</td>' in text


def test_html_leaves_out_what_records_lack(tmp_path):
    """Records without latency or MFU (a GPU run, an old file): no empty sections."""
    from mnist_bench.render import html

    report = report_cmd.build([str(AMD)], by=DEFAULT_BY)
    for row in report.rows:
        for r in row.records:
            r.latency_ms, r.mfu = None, None
    text = html.render_report(report)
    assert "<h2>Accuracy and loss per epoch</h2>" in text
    assert "Batch-1 latency" not in text and "Model FLOPs" not in text and "MFU" not in text


# ------------------------------------------------------------------------------ run figures
def test_run_saves_curves_per_variant(tmp_path):
    records = curve_records() + [
        make_record("cnn", epochs=2, accuracy_curve=[0.9, 0.95], loss_curve=[0.3, 0.1]),
        make_record("cnn", epochs=3, accuracy_curve=[0.9, 0.9, 0.9], loss_curve=[0.3, 0.2, 0.1]),
    ]
    paths = run_figures.save_epoch_curves(records, tmp_path)
    assert [p.name for p in paths] == [
        "two-dense-curves.png",
        "cnn-epochs=2-curves.png",  # `cnn [epochs=2]`: one variant in two configurations
        "cnn-epochs=3-curves.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
