"""`mnist-bench report` over 1,000 run files: load and render Markdown in under 2 seconds.

The run files are built from the stored fixture (12 records each, confusion matrices, 25
misclassified digits and the predicted labels of all 10,000 test samples per record, as a real
run writes them), spread over 10 machines.

    .venv/bin/pytest benchmarks/report_speed.py --benchmark-enable -s

Measured 2026-11-24 (2-core EPYC): 0.72 s median in-process, 1.4-1.6 s as a fresh process.
Where the time goes there: reading 0.07 s, decoding 0.35-0.5 s (msgspec, cyclic GC paused),
grouping 0.05 s, scipy's import 0.3 s (t quantiles), rendering 0.05 s, freeing the records 0.1 s.
Predicted labels (`parity`, 2026-11-25, loaded 2-core machine): a file grows from 60 to 139 KiB
(6,668 characters a record) and decoding one from 0.67 to 0.75 ms (best of 7 x 50); they stay
text until `parity` unpacks them. Load and render of the 1,000 files: median 3.2 s without
labels, 2.8 s with (paired ratio 1.03; load average 4-6 on 2 cores, over the 2 s limit either way).
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report" / "amd-jax-torch.json"
FILES = 1000
LIMIT_S = 2.0
TEST_SAMPLES = 10_000
FRAMEWORKS = ("tensorflow", "jax", "torch", "keras")


def full_test_set(record: dict, rng: random.Random) -> None:
    """The fixture's record as a run over all 10,000 test samples writes it: counts scaled,
    and every prediction kept (`predicted_labels`, the bulk of a run file since parity)."""
    from mnist_bench.runfile.records import pack_labels

    scale = TEST_SAMPLES // record["test_samples"]
    matrix = [[count * scale for count in row] for row in record["confusion_matrix"]]
    record["confusion_matrix"], record["test_samples"] = matrix, TEST_SAMPLES
    predicted = [j for row in matrix for j, count in enumerate(row) for _ in range(count)]
    rng.shuffle(predicted)
    record["predicted_labels"] = pack_labels(predicted)


def write_runs(folder: Path, count: int = FILES, *, labels: bool = True) -> Path:
    """`count` run files from the fixture: unique run ids, 10 machines, jittered timings;
    with `labels`, records of the full test set with their predicted labels."""
    base = json.loads(FIXTURE.read_text())
    rng = random.Random(0)
    if labels:
        for record in base["records"]:
            full_test_set(record, rng)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        run = copy.deepcopy(base)
        run["run_id"] = f"20261124T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:06x}"
        run["environment"]["machine_id"] = f"{i % 10:02d}aa55bb66cc"
        for record in run["records"]:
            scale = rng.uniform(0.8, 1.25)
            for key in ("train_seconds", "first_epoch_seconds", "steady_epoch_seconds"):
                record[key] *= scale
            record["train_samples_per_second"] /= scale
            record["misclassified"] = [
                [rng.randrange(record["test_samples"]), j % 10, (j + 3) % 10] for j in range(25)
            ]
        (folder / f"{run['run_id']}.json").write_text(json.dumps(run, indent=1) + "\n")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return write_runs(tmp_path_factory.mktemp("runs"))


def load_and_render(folder: Path) -> str:
    from mnist_bench.commands import report as report_cmd
    from mnist_bench.render import formats

    report = report_cmd.build([str(folder)], by=("variant", "backend", "device"))
    return formats.render(report, "markdown")


def test_report_markdown_1000_files(benchmark, runs):
    start = time.perf_counter()
    text = benchmark.pedantic(load_and_render, args=(runs,), rounds=3, iterations=1)
    seconds = (time.perf_counter() - start) / (3 if benchmark.enabled else 1)
    lines = text.splitlines()
    assert len(lines) == 2 + 6, text  # header, rule, 3 variants x 2 backends
    assert "| 2000 |" in lines[2]  # 1,000 files x 2 seeds in one row
    worst = benchmark.stats.stats.max if benchmark.enabled else seconds
    assert worst < LIMIT_S, f"load + render took {worst:.2f} s (limit {LIMIT_S} s)"


def test_cli_markdown_1000_files_imports_no_framework(runs):
    """The whole command in a fresh process, start-up included; no framework, no matplotlib."""
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import mnist_bench.cli\n"
        f"code = mnist_bench.cli.main(['report', {str(runs)!r}, '--format', 'markdown'])\n"
        "seconds = time.perf_counter() - t\n"
        f"loaded = [m for m in {FRAMEWORKS + ('matplotlib', 'seaborn')!r} if m in sys.modules]\n"
        "print(f'SECONDS {seconds:.3f} LOADED {loaded}', file=sys.stderr)\n"
        "sys.exit(code or (3 if loaded else 0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    seconds = float(out.stderr.split("SECONDS ")[1].split()[0])
    print(f"mnist-bench report, {FILES} files, markdown, fresh process: {seconds:.2f} s")
    assert seconds < LIMIT_S, out.stderr
