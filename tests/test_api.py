"""The Python API (`mnist_bench.run`, `load`, `compare`, `check`): one tiny real run per module,
the stored gate fixtures for compare and check, and the CLI's messages for bad input."""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
from pathlib import Path

import mnist_bench
import pytest
from conftest import BACKEND, ROOT, needs_backend, run_cli
from mnist_bench import api
from mnist_bench.analyse.compare import BETTER, SAME, WORSE
from mnist_bench.runfile.records import Record

GATE = ROOT / "tests" / "fixtures" / "gate"
TINY = {"epochs": 1, "train_limit": 2000, "test_limit": 500}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> mnist_bench.Results:
    folder = tmp_path_factory.mktemp("api-run")
    return mnist_bench.run(variants=["two-dense"], backends=[BACKEND], results_dir=folder, **TINY)


@needs_backend
def test_run_to_pandas_has_one_row_with_its_accuracy(results):
    df = results.to_pandas()
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["variant"], row["backend"], row["status"]) == ("two-dense", BACKEND, "ok")
    (record,) = results.records
    assert row["test_accuracy"] == record.test_accuracy
    assert 0.6 < row["test_accuracy"] <= 1.0  # 2,000 samples, one epoch: about 0.8-0.9
    assert row["seeds"] == 1 and row["epochs"] == 1 and row["train_limit"] == 2000
    raw = results.to_pandas(raw=True)
    assert len(raw) == 1 and raw.iloc[0]["seed"] == 0 and raw.iloc[0]["test_samples"] == 500


@needs_backend
def test_run_writes_the_same_run_file_as_the_command(results):
    assert results.path.is_file() and results.status == "complete"
    on_disk = mnist_bench.load(results.path)
    assert [r.to_dict() for r in on_disk.records] == [r.to_dict() for r in results.records]
    assert on_disk.runs[0].run.config["train_limit"] == 2000
    assert results.environment["dataset"]["name"] == "mnist"
    assert results.environment["command"] == (
        f"mnist_bench.run(variants=('two-dense',), backends=({BACKEND!r},), epochs=1, "
        f"train_limit=2000, test_limit=500, results_dir={str(results.path.parent)!r})"
    )
    assert [a["variant"] for a in results.aggregates] == ["two-dense"]
    assert results.figures and all(p.is_file() for p in results.figures)
    # The process's own signal handling is back: a notebook's next Ctrl-C interrupts a cell.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@needs_backend
def test_results_render_as_html_text_and_rich(results):
    page = results._repr_html_()
    assert page.startswith("<p><b>mnist-bench run ") and "<table>" in page
    assert "<td>two-dense</td>" in page and str(results.path) in page
    text = repr(results)
    assert "two-dense" in text and BACKEND in text and "test accuracy" in text
    from rich.table import Table

    table = results.table()
    assert isinstance(table, Table) and table.row_count == 1


@needs_backend
def test_confusion_matrix_and_predictions_are_figures(results):
    from matplotlib.figure import Figure

    (record,) = results.records
    fig = results.confusion_matrix("two-dense", BACKEND)
    assert isinstance(fig, Figure)
    assert f"{record.test_accuracy:.4f}" in fig.axes[0].get_title()
    shown = results.predictions("two-dense", BACKEND, count=8)
    assert isinstance(shown, Figure)
    titles = [ax.get_title() for ax in shown.axes if ax.get_title()]
    assert len(titles) == 8
    # The first test digits of MNIST are 7, 2, 1, 0: a title is the prediction, and where it is
    # wrong, the truth as well.
    wrong = {index: predicted for index, _, predicted in record.misclassified}
    for index, (truth, title) in enumerate(zip((7, 2, 1, 0), titles, strict=False)):
        expected = f"{wrong[index]} (true {truth})" if index in wrong else str(truth)
        assert title == expected
    mistakes = results.predictions("two-dense", BACKEND, count=4, wrong=True)
    assert all("(true " in ax.get_title() for ax in mistakes.axes if ax.get_title())
    with pytest.raises(mnist_bench.Error, match="no finished record of cnn-fast"):
        results.confusion_matrix("cnn-fast", BACKEND)


@needs_backend
def test_run_format_json_prints_one_object(tmp_path):
    out = run_cli(
        "run", "-b", BACKEND, "-v", "single-dense", "--epochs", "1", "--train-limit", "2000",
        "--test-limit", "500", "--results-dir", str(tmp_path), "--format", "json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # nothing else on standard output
    assert summary["status"] == "complete" and summary["exit_code"] == 0
    assert summary["records"]["ok"] == 1 and summary["pending"] == 0
    assert Path(summary["run_file"]).is_file()
    (row,) = summary["rows"]
    assert (row["variant"], row["backend"], row["device"]) == ("single-dense", BACKEND, "cpu")
    assert 0.5 < row["test_accuracy"] <= 1.0 and row["test_accuracy_ci95"] is None
    assert row["settings"]["epochs"] == 1
    record = mnist_bench.load(summary["run_file"]).records[0]
    assert row["test_accuracy"] == record.test_accuracy
    assert "single-dense" in out.stderr and "results: " in out.stderr  # the table, on stderr


def test_ctrl_c_is_keyboard_interrupt_and_the_process_lives_on(tmp_path):
    """As in a notebook kernel: Ctrl-C mid-run raises KeyboardInterrupt naming the resume, the
    process's own SIGINT handling is back, and a later call finishes the run. (No backend is
    installed in the child: each record is skipped at once, and the signal comes with the
    second.)"""
    code = (
        "import os, pathlib, signal, sys\n"
        "from mnist_bench.core import environment; from mnist_bench.execute import progress\n"
        "environment.installed_backends = lambda: []\n"
        "seen = []\n"
        "shown = progress.PlainProgress.on_record\n"
        "def on_record(self, job, record):\n"
        "    shown(self, job, record)\n"
        "    seen.append(job.seed)\n"
        "    if seen == [0, 1]:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "progress.PlainProgress.on_record = on_record\n"
        "import mnist_bench\n"
        "try:\n"
        "    mnist_bench.run(backends='torch', variants='two-dense', seeds='0,1,2',\n"
        "                    results_dir=sys.argv[1])\n"
        "except KeyboardInterrupt as exc:\n"
        "    print('KeyboardInterrupt:', exc)\n"
        "print('default handler:', signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "(path,) = pathlib.Path(sys.argv[1]).glob('*.json')\n"
        "print('file says:', mnist_bench.load(path).status)\n"
        "done = mnist_bench.run(resume=path, progress=False)\n"
        "print('resumed:', done.status, sorted(r.seed for r in done.records))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    (path,) = tmp_path.glob("*.json")
    assert lines == [
        f"KeyboardInterrupt: interrupted: 1 record(s) saved, 2 left; finish with "
        f"mnist_bench.run(resume={str(path)!r})",
        "default handler: True",
        "file says: interrupted",
        "resumed: complete [0, 1, 2]",
    ]
    assert out.stderr.count("record(s) to go") == 1  # progress=False: the resume said nothing


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("keywords", "flags"),
    [
        ({"epochs": 0}, ["--epochs", "0"]),
        ({"variants": "nope"}, ["-v", "nope"]),
        ({"backends": ["jax", "tf"]}, ["-b", "jax,tf"]),
        ({"seeds": "0,0"}, ["--seeds", "0,0"]),
        ({"learning_rate": -1.0}, ["--learning-rate", "-1"]),
        ({"suite": "no/such.toml"}, ["--suite", "no/such.toml"]),
    ],
)
def test_bad_value_raises_error_with_the_commands_message(tmp_path, keywords, flags):
    with pytest.raises(mnist_bench.Error) as caught:
        mnist_bench.run(results_dir=tmp_path, **keywords)
    message = str(caught.value)
    assert "\n" not in message
    out = run_cli("run", *flags, "--results-dir", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr == f"mnist-bench run: error: {message}\n"
    assert not any(tmp_path.iterdir())  # nothing was started


def test_unknown_keyword_is_an_error_naming_the_close_one(tmp_path):
    with pytest.raises(mnist_bench.Error, match=r"unknown option 'epoch' \(did you mean 'epochs'"):
        mnist_bench.run(epoch=1, results_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_messages_about_keywords_name_the_keywords(tmp_path):
    with pytest.raises(mnist_bench.Error, match="^resume finishes a run .*; drop epochs$"):
        mnist_bench.run(resume=tmp_path / "x.json", epochs=2)
    with pytest.raises(mnist_bench.Error, match="^repeats must be at least 1$"):
        mnist_bench.run(repeats=0, results_dir=tmp_path)
    with pytest.raises(mnist_bench.Error, match=r"^repeats must be an integer >= 1 \(got '3'\)$"):
        mnist_bench.run(repeats="3", results_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_run_keywords_are_the_commands_options():
    """Every `mnist-bench run` option is a keyword of `run`, under its RunConfig field name:
    typed in the signature, or (an option added since) through `**more`."""
    from mnist_bench.cli import build_parser

    params = inspect.signature(mnist_bench.run).parameters
    typed = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert typed - {"progress", "figures"} <= set(api.RUN_OPTIONS)
    assert {"variants", "backends", "seeds", "epochs", "train_limit", "suite"} <= typed
    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {a.dest for a in run_parser._actions}
    assert set(api.RUN_OPTIONS) <= flags  # (where to execute, and output, are the command's)


def test_import_is_quick_and_loads_no_framework():
    code = (
        "import sys, mnist_bench\n"
        "assert 'mnist_bench.api' not in sys.modules\n"
        "mnist_bench.load, mnist_bench.Error\n"
        "heavy = {'keras', 'tensorflow', 'jax', 'torch', 'matplotlib', 'pandas'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------- load, compare and check
def test_load_reads_files_and_folders():
    one = mnist_bench.load(GATE / "baseline.json")
    assert len(one.runs) == 1 and len(one.rows) == 9 and one.path == GATE / "baseline.json"
    assert all(isinstance(r, Record) for r in one.records)
    both = mnist_bench.load([GATE / "baseline.json", str(GATE / "regressed.json")])
    assert len(both.runs) == 2 and len(both.records) == 2 * len(one.records)
    with pytest.raises(mnist_bench.Error, match="no such file or folder"):
        mnist_bench.load(GATE / "missing.json")


def test_compare_gives_typed_rows_and_verdicts():
    comparison = mnist_bench.compare(GATE / "baseline.json", GATE / "regressed.json")
    assert len(comparison) == 9
    verdicts = {(r.job.variant, r.job.backend): r.verdict for r in comparison}
    assert {k for k, v in verdicts.items() if v == WORSE} == {
        ("two-dense", b) for b in ("tensorflow", "jax", "torch")
    }
    assert set(verdicts.values()) == {WORSE, SAME}
    summary = {(e["variant"], e["backend"]): e for e in comparison.summary()}
    drop = summary["two-dense", "jax"]
    assert drop["test_accuracy_verdict"] == WORSE
    assert drop["test_accuracy_delta"] == pytest.approx(0.922033 - 0.966533, abs=1e-5)
    assert len(comparison.to_pandas()) == 9
    assert "<table>" in comparison._repr_html_()
    back = mnist_bench.compare(GATE / "regressed.json", GATE / "baseline.json")
    assert {r.verdict for r in back if r.job.variant == "two-dense"} == {BETTER}


def test_check_returns_the_verdict_the_command_exits_with():
    verdict = mnist_bench.check(GATE / "regressed.json", GATE / "baseline.json")
    assert not verdict.passed and not verdict
    assert sorted(f.row.job.backend for f in verdict.failures) == ["jax", "tensorflow", "torch"]
    assert all(f.reason.startswith("accuracy -0.04") for f in verdict.failures)
    assert str(verdict).startswith("check FAILED: 3 row(s) failed")
    cli = run_cli("check", str(GATE / "regressed.json"), "--baseline", str(GATE / "baseline.json"))
    assert cli.returncode == 1
    passed = mnist_bench.check(mnist_bench.load(GATE / "aa.json"), GATE / "baseline.json")
    assert passed.passed and passed.failures == [] and not passed.missing and not passed.extra
    assert "check passed: 9 row(s)" in str(passed) and "green" in passed._repr_html_()


def test_check_refuses_what_the_command_refuses():
    with pytest.raises(mnist_bench.Error, match="hold the same run"):
        mnist_bench.check(GATE / "baseline.json", GATE / "baseline.json")
    with pytest.raises(mnist_bench.Error, match="match_on: unknown field 'colour'"):
        mnist_bench.check(GATE / "aa.json", GATE / "baseline.json", match_on="variant,colour")


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    with pytest.raises(mnist_bench.Error, match=r"pip install 'mnist-bench\[pandas\]'"):
        mnist_bench.load(GATE / "aa.json").to_pandas()
