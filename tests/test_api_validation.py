"""The API holds its arguments to the command line's rules: the same check of each value, the
same one-line `mnist_bench.Error`, never a raw exception; the gate cannot be talked into passing a
regression; blank names and paths, `--repeats` with `--seeds`, and a closed standard output end
the same way in every command (issue 24, items 2, 5 and 7)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mnist_bench
import pytest
from conftest import BACKEND, FAKE_WORKER, ROOT, needs_backend, only_run
from mnist_bench import cli

GATE = ROOT / "tests" / "fixtures" / "gate"
REPORT = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"
BASE = GATE / "baseline.json"
DROPPED = ("single-dense", "tensorflow")  # the configuration whose accuracy falls


def one_line_error(call, *match: str) -> str:
    """The `mnist_bench.Error` that `call()` raises: one line, naming each of `match`."""
    with pytest.raises(mnist_bench.Error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message
    for text in match:
        assert text in message, message
    return message


def edited(source: Path, target: Path, run_id: str, edit=None) -> Path:
    """A copy of the run file `source` as another run (`run_id`), each record passed to
    `edit(record)` first."""
    run = json.loads(source.read_text())
    run["run_id"] = run_id
    for record in run["records"]:
        if edit is not None:
            edit(record)
    target.write_text(json.dumps(run))
    return target


def uncontended(record: dict[str, Any]) -> None:
    record["contended"] = False  # timings count (contended ones are never judged on time)


@pytest.fixture
def pair(tmp_path) -> dict[str, Path]:
    """The baseline (timings uncontended) and three new runs of it: `same` (nothing changed),
    `dropped` (single-dense on TensorFlow from 0.92 to 0.30 on every seed), `slower` (training
    and inference throughput down 90% everywhere)."""

    def drop(record):
        uncontended(record)
        if (record["variant"], record["backend"]) == DROPPED:
            record["test_accuracy"] = 0.30

    def slow(record):
        uncontended(record)
        for name in ("train_samples_per_second", "infer_samples_per_second"):
            record[name] *= 0.1

    base_id = json.loads(BASE.read_text())["run_id"]
    return {
        "base": edited(BASE, tmp_path / "base.json", base_id, uncontended),
        "same": edited(BASE, tmp_path / "same.json", "20261203T000000Z-aaaaaa", uncontended),
        "dropped": edited(BASE, tmp_path / "dropped.json", "20261203T000001Z-bbbbbb", drop),
        "slower": edited(BASE, tmp_path / "slower.json", "20261203T000002Z-cccccc", slow),
    }


# --------------------------------------------------------------------------- item 2: the gate
def test_the_gate_fails_the_drop_with_valid_tolerances_and_passes_the_same_run(pair):
    for tolerance in (0.005, 0.01, 0, 1e-9):
        verdict = mnist_bench.check(pair["dropped"], pair["base"], accuracy_tolerance=tolerance)
        assert not verdict.passed
        assert [f.row.label["variant"] for f in verdict.failures] == ["single-dense"]
        assert verdict.failures[0].row.label["backend"] == "tensorflow"
    for tolerance in (0.005, 0.01, 0.2):  # harmless: nothing changed
        assert mnist_bench.check(pair["same"], pair["base"], accuracy_tolerance=tolerance).passed
    # A tolerance of the whole accuracy range lets a 0.62-point drop through: on purpose.
    assert mnist_bench.check(pair["dropped"], pair["base"], accuracy_tolerance=1).passed


BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1, -1e-9, "x", "0.25", True, None, [0.1]]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("keyword", ["accuracy_tolerance", "time_tolerance", "max_slowdown"])
def test_check_refuses_a_tolerance_that_breaks_the_rule(pair, keyword, value):
    if keyword == "max_slowdown" and value is None:
        return  # None is "no throughput gate", the default
    one_line_error(
        lambda: mnist_bench.check(pair["dropped"], pair["base"], **{keyword: value}),
        keyword,
    )


@pytest.mark.parametrize(
    "keyword,value", [("accuracy_tolerance", 1.5), ("max_slowdown", 2), ("time_tolerance", 11)]
)
def test_check_refuses_a_tolerance_out_of_its_range(pair, keyword, value):
    one_line_error(lambda: mnist_bench.check(pair["same"], pair["base"], **{keyword: value}),
                   keyword, "<=")  # fmt: skip


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("keyword", ["accuracy_tolerance", "time_tolerance"])
def test_compare_and_judge_refuse_the_same_values(pair, keyword, value):
    one_line_error(lambda: mnist_bench.compare(pair["base"], pair["dropped"], **{keyword: value}),
                   keyword)  # fmt: skip
    from mnist_bench.api import judge

    loaded = mnist_bench.load(pair["dropped"]), mnist_bench.load(pair["base"])
    gate = {"accuracy_tolerance": 0.005, "time_tolerance": 0.1, "max_slowdown": None}
    options = {**gate, "allow_missing": False, "match_on": None, keyword: value}
    one_line_error(lambda: judge(*loaded, **options), keyword)


def test_max_slowdown_fails_a_90_percent_fall_and_refuses_nan(pair):
    verdict = mnist_bench.check(pair["slower"], pair["base"], max_slowdown=0.25)
    assert not verdict.passed and len(verdict.failures) == 9
    assert all("(limit -25%)" in f.reason for f in verdict.failures), verdict
    assert mnist_bench.check(pair["same"], pair["base"], max_slowdown=0.25).passed
    assert mnist_bench.check(pair["slower"], pair["base"]).passed  # no throughput gate asked
    one_line_error(
        lambda: mnist_bench.check(pair["slower"], pair["base"], max_slowdown=math.nan),
        "max_slowdown must be a finite number",
    )


@pytest.mark.parametrize(
    "flag,value", [("--accuracy-tolerance", "nan"), ("--accuracy-tolerance", "-1"),
                   ("--time-tolerance", "nan"), ("--max-slowdown", "nan"),
                   ("--accuracy-tolerance", "150%"), ("--max-slowdown", "inf")],
)  # fmt: skip
def test_the_command_refuses_them_by_the_same_rule_naming_its_flag(pair, capsys, flag, value):
    code = cli.main(["check", str(pair["dropped"]), "--baseline", str(pair["base"]), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    keyword = flag.removeprefix("--").replace("-", "_")
    number = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    with pytest.raises(mnist_bench.Error) as api:
        mnist_bench.check(pair["dropped"], pair["base"], **{keyword: number})
    # The one rule, each side naming it its own way.
    assert err == f"mnist-bench check: error: {str(api.value).replace(keyword, flag)}\n"


def test_the_command_still_takes_a_percentage(pair, capsys):
    args = ["check", str(pair["dropped"]), "--baseline", str(pair["base"])]
    assert cli.main([*args, "--accuracy-tolerance", "1%"]) == 1
    assert cli.main([*args, "--accuracy-tolerance", "100%"]) == 0


# ------------------------------------------------------------- item 5: no raw exception
def test_load_and_compare_refuse_what_is_no_path(pair, tmp_path):
    for value in (5, None, 1.5, b"x.json", {"a": 1}, [5], [], "", " ", [str(pair["base"]), ""]):
        one_line_error(lambda v=value: mnist_bench.load(v), "paths")
    one_line_error(lambda: mnist_bench.compare(5, pair["base"]), "base must be Results")
    one_line_error(lambda: mnist_bench.compare(pair["base"], None), "new must be Results")
    one_line_error(lambda: mnist_bench.check(pair["same"], 5), "baseline must be Results")
    one_line_error(lambda: mnist_bench.load(pair["base"], skip_bad="yes"), "skip_bad")
    one_line_error(lambda: mnist_bench.check(pair["same"], pair["base"], allow_missing=1),
                   "allow_missing")  # fmt: skip
    # Paths as the API takes them still work: str, Path, a list of both.
    assert len(mnist_bench.load([pair["base"], str(pair["same"])]).runs) == 2


@pytest.mark.parametrize("value", [5, [5], "nosuch", [], "", b"variant"], ids=repr)
def test_match_on_must_name_fields(pair, value):
    one_line_error(lambda: mnist_bench.compare(pair["base"], pair["same"], match_on=value),
                   "match_on")  # fmt: skip


def test_match_on_as_a_list_or_a_string(pair):
    for value in (["variant", "backend", "device"], "variant,backend,device", ("variant",)):
        assert mnist_bench.check(pair["same"], pair["base"], match_on=value).passed


@pytest.mark.parametrize(
    "options,named",
    [
        ({"suite": 5}, "suite must be a string"),
        ({"suite": ""}, "suite must be a non-empty string"),
        ({"variants": ""}, "variants must each be a non-empty string"),
        ({"variants": ["two-dense", ""]}, "variants must each be a non-empty string"),
        ({"backends": [""]}, "backends must each be a non-empty string"),
        ({"results_dir": ""}, "results_dir must be a non-empty string"),
        ({"data": " "}, "data must be a non-empty string"),
        ({"repeats": 3, "seeds": [0, 1]}, "repeats N means seeds 0,1,...,N-1"),
        ({"progress": "yes"}, "progress must be true or false"),
        ({"figures": None}, "figures must be true or false"),
        ({"resume": ""}, "resume must be a non-empty string"),
        ({"resume": 5}, "resume must be a string"),
        ({"epochs": "1"}, "epochs must be an integer"),
    ],
    ids=repr,
)
def test_run_refuses_bad_arguments_before_anything_is_written(tmp_path, monkeypatch, options,
                                                              named):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # a blank results_dir would be this folder
    tiny = {"backends": BACKEND, "epochs": 1, "train_limit": 100, "test_limit": 100}  # if run
    options = {"results_dir": str(tmp_path / "runs"), "progress": False, **tiny, **options}
    one_line_error(lambda: mnist_bench.run(**options), named)
    assert list(tmp_path.iterdir()) == []


def test_results_methods_refuse_bad_arguments():
    results = mnist_bench.load(REPORT)
    one_line_error(lambda: results.select(variant=5), "variant must be a string")
    one_line_error(lambda: results.select(backend=""), "backend must be a non-empty string")
    one_line_error(lambda: results.confusion_matrix(5, "jax"), "variant must be a string")
    one_line_error(lambda: results.confusion_matrix("cnn", None), "backend must be a string")
    one_line_error(lambda: results.confusion_matrix("cnn", "jax", device=0), "device")
    for count in ("x", 0, -1, 10**6, True, 2.0):
        one_line_error(lambda c=count: results.predictions("cnn", "jax", count=c), "count")
    one_line_error(lambda: results.predictions("cnn", "jax", wrong="yes"), "wrong")
    assert len(results.select(variant="cnn").records) == 2  # still selects


def _edit_records(tmp_path: Path, edit) -> mnist_bench.Results:
    """The report fixture (its cnn · jax row: one finished seed, one failed) as another run,
    `edit` applied to each record with a confusion matrix."""

    def finished(record):
        if record["confusion_matrix"] is not None:
            edit(record)

    target = tmp_path / "edited.json"
    return mnist_bench.load(edited(REPORT, target, "20261203T000003Z-dddddd", finished))


def test_predictions_when_the_record_lists_none_of_its_mistakes():
    """The stored files keep a confusion matrix but no misclassified images: nothing is known
    beyond the count, said in one line (it was a ValueError of max())."""
    results = mnist_bench.load(REPORT)
    one_line_error(lambda: results.predictions("cnn", "jax"), "lists none of its",
                   "misclassified")  # fmt: skip
    one_line_error(lambda: results.predictions("cnn", "jax", wrong=True), "lists none of its")


def test_predictions_of_a_class_the_run_file_does_not_name(tmp_path):
    """A 12-class matrix, ten class names: the unnamed class shows as its number (it was an
    IndexError)."""

    def twelve(record):
        matrix = record["confusion_matrix"]
        record["confusion_matrix"] = [row + [0, 0] for row in matrix] + [[0] * 12] * 2
        record["confusion_matrix"][7][7] -= 1
        record["confusion_matrix"][7][11] += 1
        record["misclassified"] = [[3, 7, 11]]

    results = _edit_records(tmp_path, twelve)
    fig = results.predictions("cnn", "jax", count=8)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4  # known up to the one listed mistake: test images 0..3
    assert titles[3].startswith("11 (true ")
    wrong = results.predictions("cnn", "jax", wrong=True)
    assert [ax.get_title() for ax in wrong.axes if ax.get_title()][0].startswith("11 (true ")


def test_predictions_of_a_record_measured_on_more_images_than_the_dataset(tmp_path):
    def more(record):
        record["test_samples"] += 20_000
        record["confusion_matrix"][0][0] += 20_000
        record["misclassified"] = [[15_000, 0, 1]]

    results = _edit_records(tmp_path, more)
    for wrong in (False, True):
        one_line_error(lambda w=wrong: results.predictions("cnn", "jax", wrong=w),
                       "measured on 20500 test images, the dataset has 10000")  # fmt: skip


def test_confusion_matrix_of_no_test_sample_says_so(tmp_path):
    """An all-zero matrix (no test sample): a figure that says there is nothing (it was a
    ZeroDivisionError)."""

    def empty(record):
        record["confusion_matrix"] = [[0] * 10 for _ in range(10)]
        record["test_samples"] = 0

    results = _edit_records(tmp_path, empty)
    fig = results.confusion_matrix("cnn", "jax")
    title = fig.axes[0].get_title()
    assert "no test samples" in title and "accuracy" not in title
    shown = results.predictions("cnn", "jax")
    assert "predictions, no test images" in shown.texts[0].get_text()


# --------------------------------------------------------------------- item 7: minor
def test_api_messages_name_the_api_keyword_and_the_command_its_flag(pair, tmp_path, capsys):
    bad = tmp_path / "bad" / "broken.json"
    bad.parent.mkdir()
    bad.write_text("{")
    message = one_line_error(lambda: mnist_bench.load(bad), "skip_bad=True")
    assert "--skip-bad" not in message
    one_line_error(lambda: mnist_bench.compare(bad.parent, pair["base"]), "skip_bad=True")
    one_line_error(lambda: mnist_bench.check(bad.parent, pair["base"]), "skip_bad=True")
    folder = tmp_path / "bad"
    edited(BASE, folder / "same.json", "20261203T000000Z-aaaaaa")
    assert mnist_bench.check(folder, BASE, skip_bad=True).passed
    assert len(mnist_bench.compare(BASE, folder, skip_bad=True)) == 9
    assert cli.main(["report", str(bad)]) == 2
    assert "(pass --skip-bad to skip bad files)" in capsys.readouterr().err


def mnist_bench_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`mnist-bench ARGS` in a fresh process whose current folder is `folder`."""
    return subprocess.run([sys.executable, "-m", "mnist_bench", *args], capture_output=True,
                          text=True, cwd=folder, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    "args,named",
    [
        (["run", "--repeats", "3", "--seeds", "0,1"], "--repeats N means --seeds 0,1,...,N-1"),
        (["run", "--variant", ""], "argument --variant/-v: an empty value"),
        (["run", "--backend", ""], "argument --backend/-b: an empty value"),
        (["run", "--variant", "two-dense,"], "variants must each be a non-empty string"),
        (["run", "-v", ","], "variants must each be a non-empty string"),
        (["run", "--results-dir", ""], "argument --results-dir: an empty value"),
        (["run", "--data", " "], "argument --data: an empty value"),
        (["run", "--resume", ""], "argument --resume: an empty value"),
        (["report", ""], "argument RUN: an empty value"),
        (["history", ""], "argument RUN: an empty value"),
        (["compare", "", "x"], "argument BASE: an empty value"),
        (["check", "x", "--baseline", ""], "argument --baseline: an empty value"),
        (["list", "--suite", ""], "argument --suite: an empty value"),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else None,
)
def test_blank_names_and_paths_and_repeats_with_seeds_are_refused(tmp_path, args, named):
    out = mnist_bench_in(tmp_path, *args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and named in out.stderr, out.stderr
    assert out.stdout == "" and list(tmp_path.iterdir()) == []  # nothing written here


def closed_stdout(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`mnist-bench ARGS` writing into a pipe its reader has already closed (`| head` that
    has read what it wanted): every write fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "mnist_bench", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, **(env or {})})  # fmt: skip
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ["history", "tests/fixtures/gate"],  # rich's own handling exited 1, "worse step found"
        ["report", "tests/fixtures/gate"],
        ["report", "tests/fixtures/gate", "--format", "csv"],
        ["compare", str(BASE), str(GATE / "regressed.json")],
        ["check", str(GATE / "regressed.json"), "--baseline", str(BASE)],  # not 1: cut short
        ["check", str(GATE / "aa.json"), "--baseline", str(BASE)],  # nor 0
        ["schema"],
        ["list", "--no-probe"],
    ],
    ids=" ".join,
)
def test_a_closed_standard_output_exits_141_quietly(args):
    out = closed_stdout(*args)
    assert out.returncode == cli.CLOSED_STDOUT == 141, out.stderr
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert "Exception ignored" not in out.stderr, out.stderr


@needs_backend
def test_a_run_whose_reader_left_still_saves_every_record(tmp_path):
    """`mnist-bench run ... | head -1`: the run goes on quietly to its end (rich's own handling
    exited 1 at the first line, leaving the run file `running` with no record). The fake
    worker: the driver's writes are tested, not the training."""
    out = closed_stdout("run", "-b", BACKEND, "-v", "two-dense", "--epochs", "1",
                        "--train-limit", "600", "--test-limit", "300", "--no-figures",
                        "--results-dir", str(tmp_path), env=FAKE_WORKER)  # fmt: skip
    assert out.returncode == 141 and "Traceback" not in out.stderr, out.stderr
    run = only_run(tmp_path)
    assert run.status == "complete" and [r.status for r in run.records] == ["ok"]
