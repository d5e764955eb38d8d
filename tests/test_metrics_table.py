"""The metrics table is the one description of each metric: export's units, the run file's
ranges and schema, compare's throughput gate and history's tracked metrics all follow it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from conftest import make_record
from mnist_bench.analyse import compare, history
from mnist_bench.core import stats
from mnist_bench.core.metrics import MAX_VALUE, METRICS, TRACKED, Metric
from mnist_bench.publish import export
from mnist_bench.runfile import records, schema


def test_consumers_derive_from_the_table():
    assert {m.name: (m.unit, m.export_scale) for m in METRICS} == export.UNITS
    assert {n: records.RANGES[n] for n in (m.name for m in METRICS)} == {
        m.name: (m.low, m.high) for m in METRICS
    }
    assert [m.name for m in compare.THROUGHPUT] == [
        "train_samples_per_second",
        "infer_samples_per_second",
    ]
    assert history.TRACKED == TRACKED
    assert [m.name for m in TRACKED] == ["test_accuracy", "steady_epoch_seconds"]
    props = schema.run_file_schema()["$defs"]["Record"]["properties"]
    for m in METRICS:
        branch = next(b for b in props[m.name]["anyOf"] if b.get("type") != "null")
        assert (branch["minimum"], branch["maximum"]) == (m.low, m.high)


def test_every_metric_has_a_unit_and_a_sane_range():
    for m in METRICS:
        assert m.unit, m.name
        assert -MAX_VALUE <= m.low < m.high <= MAX_VALUE, m.name


def test_export_value_takes_the_metrics_unit_and_scale():
    summary = stats.Summary(1, 0.5, 0.0, 0.5, 0.5, None, None)
    accuracy = next(m for m in METRICS if m.name == "test_accuracy")
    assert export.Value.of(summary, accuracy).unit == "%"
    assert export.Value.of(summary, accuracy).mean == 50.0
    renamed = dataclasses.replace(accuracy, unit="fraction", export_scale=1.0)
    value = export.Value.of(summary, renamed)
    assert (value.mean, value.unit) == (0.5, "fraction")


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [("test_accuracy", 1.5, 1.0), ("test_loss", -2e50, -3.0), ("mfu", -0.1, 0.0)],
)
def test_ranges_from_the_table_are_what_a_fresh_record_keeps(name, bad, good):
    dropped, problem = records.make_writable(make_record(**{name: bad}))
    assert problem is None and dropped == [f"{name} {bad}"]
    assert records.make_writable(make_record(**{name: good})) == ([], None)


# Run in a fresh interpreter: the table is patched before any consumer is imported, as if
# a metric were added to it and another were marked tracked, a throughput, a new range.
PATCHED = """
import dataclasses, json
from mnist_bench.core import metrics
extra = metrics.Metric("extra_per_step", "extra", 2, True, True, unit="steps/s",
                       export_scale=2.0, low=1.0, high=9.0, throughput=True, tracked=True)
metrics.METRICS = (*metrics.METRICS, extra)
metrics.HEADLINE = tuple(m for m in metrics.METRICS if m.headline or m is extra)
metrics.TRACKED = tuple(m for m in metrics.METRICS if m.tracked)
from mnist_bench.analyse import compare, history
from mnist_bench.publish import export
from mnist_bench.runfile import records
print(json.dumps({
    "unit": export.UNITS.get("extra_per_step"),
    "range": records.RANGES.get("extra_per_step"),
    "throughput": [m.name for m in compare.THROUGHPUT],
    "tracked": [m.name for m in history.TRACKED],
}))
"""


def test_a_new_metric_in_the_table_reaches_every_consumer():
    out = subprocess.run(
        [sys.executable, "-c", PATCHED], capture_output=True, text=True, check=True
    ).stdout
    got = json.loads(out)
    assert got["unit"] == ["steps/s", 2.0]
    assert got["range"] == [1.0, 9.0]
    assert got["throughput"][-1] == "extra_per_step"
    assert got["tracked"] == ["test_accuracy", "steady_epoch_seconds", "extra_per_step"]


def test_metric_defaults_are_an_unbounded_nonnegative_untracked_timing():
    m = Metric("x", "x")
    assert (m.low, m.high, m.throughput, m.tracked) == (0.0, MAX_VALUE, False, False)
