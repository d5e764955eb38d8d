"""Saving one record: its cost at 10, 100 and 1,000 records, before and after the run journal.

Before: `Run.save` rewrote the whole run file after every record (`storage.write_json(path,
run.to_dict())`), so a record's save cost grew with the records already saved, and a whole run's
saving grew with the square of its size. After: `Run._add` appends the record as one fsynced line
to the run's journal (`journal.Journal.append`); the whole file is written once more when the run
stops (`journal.fold`, the cost of one "before" save).

Records are shaped like real ones: the stored fixture's first record (10x10 confusion matrix,
inference sweep, curves, time to accuracy) with 25 misclassified rows, a seed each.

    .venv/bin/pytest benchmarks/save_speed.py --benchmark-enable -s -q

Measured 2026-11-25 (2-core EPYC, shared with other jobs; ext4 on a virtual disk), median ms
to save one record when the run holds 10 / 100 / 1,000 records:
before 5.8 / 47 / 497 ms, after 0.53 / 0.53 / 0.56 ms (fsync is most of it). The fold at the
end costs one "before" save, once.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mnist_bench.runfile import journal, storage
from mnist_bench.runfile.records import Record, RunFile, load_run

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report" / "amd-jax-torch.json"
SIZES = (10, 100, 1000)
ROUNDS = {"rewrite": 7, "journal": 50}
RESULTS: dict[tuple[str, int], float] = {}  # (how, size) -> median seconds per record saved


def make_run(size: int) -> tuple[RunFile, list[Record]]:
    """A run file holding `size - 1` records, and the `size`-th record about to be saved."""
    base = load_run(FIXTURE)
    template = base.records[0]
    assert template.confusion_matrix and len(template.confusion_matrix) == 10
    records = [
        dataclasses.replace(
            template,
            job=dataclasses.replace(template.job, seed=seed),
            misclassified=[[(seed * 31 + j * 7) % 10000, j % 10, (j + 3) % 10] for j in range(25)],
        )
        for seed in range(size)
    ]
    run = dataclasses.replace(base, records=records[:-1], aggregates=[], status="running")
    return run, records


def median_seconds(benchmark, save: Callable[[], None], rounds: int) -> float:
    """The median of `rounds` calls of `save`, through pytest-benchmark when it is enabled."""
    benchmark.pedantic(save, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.enabled:
        return benchmark.stats.stats.median
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        save()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("size", SIZES)
def test_rewrite_whole_file(benchmark, tmp_path, size):
    """Before: the `size`-th record saved by rewriting the run file with all `size` records."""
    run, records = make_run(size)
    run.records.append(records[-1])
    path = tmp_path / "run.json"
    seconds = median_seconds(
        benchmark, lambda: storage.write_json(path, run.to_dict()), ROUNDS["rewrite"]
    )
    assert len(load_run(path).records) == size
    RESULTS["rewrite", size] = seconds


@pytest.mark.parametrize("size", SIZES)
def test_journal_append(benchmark, tmp_path, size):
    """After: the `size`-th record appended to a journal that holds the other `size - 1`."""
    run, records = make_run(size)
    path = tmp_path / "run.json"
    storage.write_json(path, run.to_dict())
    log = journal.Journal(path, run.environment)
    for record in records[:-1]:
        log.append(record, run.environment)
    seconds = median_seconds(
        benchmark, lambda: log.append(records[-1], run.environment), ROUNDS["journal"]
    )
    assert len(load_run(path).records) == size  # the repeated appends are one record
    RESULTS["journal", size] = seconds


def test_summary():
    if len(RESULTS) < 2 * len(SIZES):
        pytest.skip("run the whole module for the summary")
    print()
    print("per-record save cost, median ms:   " + "".join(f"{n:>10,}" for n in SIZES))
    for how, label in (("rewrite", "before (rewrite whole file)"), ("journal", "after (journal)")):
        print(f"  {label:<32}" + "".join(f"{RESULTS[how, n] * 1e3:>10.2f}" for n in SIZES))
    small, large = RESULTS["journal", SIZES[0]], RESULTS["journal", SIZES[-1]]
    # Independent of the run's size: within noise (fsync dominates, and varies).
    assert large < 2 * small + 0.002, (small, large)
    assert RESULTS["rewrite", SIZES[-1]] > 10 * large
