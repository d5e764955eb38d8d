"""Run files that pass the schema but say odd or inconsistent things (issue 12, point 4).

Every reader of run files (`report` in every format, `compare`, `check`, `run --resume`, and the
time estimate of `list --suite`) either handles such a file or refuses it with one line that
names the file (and the field), exit 2; never a traceback. Two sources of such files:
hypothesis builds them from the schema (`RunFile`, `Record`, `Job`, `TrainSettings`), and real
run files are mutated (a field deleted, a type changed, values swapped, records duplicated...).

The CLI runs in-process (`mnist_bench.cli.main`), so each command costs milliseconds, not a
fresh interpreter; an exception that escapes it is caught here and fails the test with its
traceback.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import BACKEND, ROOT, needs_backend
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mnist_bench import cli, data
from mnist_bench.core.config import BACKENDS, DEVICES, MAX_SEED, OPTIMIZERS, SCHEDULES
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import dataset_digest
from mnist_bench.plan import estimate
from mnist_bench.runfile.records import (
    COUNTS,
    ITEM_RANGES,
    LATENCY_KEYS,
    MAX_VALUE,
    RANGES,
    RUN_STATUSES,
    SCHEMA_VERSION,
    STATUSES,
    load_run,
)
from mnist_bench.runfile.schema import run_file_schema

# Derandomized so CI is repeatable; MNIST_BENCH_FUZZ_RANDOM=1 explores fresh cases.
PROPERTIES = settings(
    derandomize=os.environ.get("MNIST_BENCH_FUZZ_RANDOM") != "1",
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
FIXTURES = ROOT / "tests" / "fixtures"
REAL_FILES = [
    ROOT / "results" / "baseline" / "ci.json",
    FIXTURES / "gate" / "aa.json",
    FIXTURES / "gate" / "regressed.json",
    FIXTURES / "report" / "intel-jax.json",
    FIXTURES / "report" / "amd-jax-torch.json",
]
GOOD = FIXTURES / "report" / "intel-jax.json"  # a file every command accepts
SUITE = ROOT / "suites" / "ci.toml"
REPORTS = (
    ("--format", "table"),
    ("--format", "markdown"),
    ("--format", "csv"),
    ("--format", "csv", "--raw"),
)
HTML = ("--format", "html")


SCHEMA = jsonschema.Draft202012Validator(run_file_schema())


# ------------------------------------------------------------------------------------ the CLI
def mnist_bench(*args: str | Path) -> tuple[int, str, str]:
    """`mnist-bench ARGS` in this process: (exit code, stdout, stderr). An exception escaping
    `main` becomes exit code -1 with its traceback on stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # what this test exists to catch
            traceback.print_exc(file=err)
            code = -1
    return code, out.getvalue(), err.getvalue()


def assert_clean(result: tuple[int, str, str], allowed: set[int], names: list[Path]) -> None:
    """No traceback, an allowed exit code, and a refusal (exit 2) in one line naming a file."""
    code, _, err = result
    assert "Traceback" not in err, err
    assert code in allowed, (code, err[-3000:])
    if code == 2:
        errors = [line for line in err.splitlines() if ": error: " in line]
        assert len(errors) == 1, err
        assert any(str(p) in errors[0] for p in names), errors[0]


def every_reader(path: Path, tmp: Path, *, html: bool = True) -> None:
    """`report` in every format, `compare` and `check` both ways, over `path`."""
    for fmt in REPORTS + ((HTML,) if html else ()):
        assert_clean(mnist_bench("report", path, *fmt), {0, 2}, [path])
    both = [path, GOOD]
    assert_clean(mnist_bench("report", path, GOOD, "--skip-bad"), {0}, both)
    assert_clean(mnist_bench("compare", path, GOOD), {0, 2}, both)
    assert_clean(mnist_bench("compare", GOOD, path, "--format", "markdown"), {0, 2}, both)
    assert_clean(mnist_bench("check", path, "--baseline", GOOD), {0, 1, 2}, both)
    assert_clean(mnist_bench("check", GOOD, "--baseline", path), {0, 1, 2}, both)
    assert_clean(
        mnist_bench("check", path, "--baseline", GOOD, "--match-on", "variant,backend"),
        {0, 1, 2},
        both,
    )


def estimate_reads(path: Path, tmp: Path) -> str:
    """`list --suite` with `path` as the only earlier run it learns from; returns stderr."""
    runs = tmp / "estimate" / "results" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "earlier.json").write_bytes(path.read_bytes())
    with contextlib.chdir(runs.parent.parent):
        result = mnist_bench("list", "--suite", SUITE, "--no-probe")
    assert_clean(result, {0}, [])
    return result[2]


def accepted(path: Path) -> bool:
    """Whether the reader takes the file (counted in hypothesis' statistics)."""
    try:
        load_run(path)
    except UserError:
        event("refused by the reader")
        return False
    event("accepted by the reader")
    return True


def write(path: Path, run: Any) -> Path:
    path.write_text(json.dumps(run, allow_nan=False, ensure_ascii=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- strategies
TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "x" * 3000, "ünïcødé ✓ 数字 🚀", "a|b\nc\td", "<b>&amp;</b>", "../../etc", "\u202e"]
    ),
)
EXTREMES = (0.0, -0.0, 5e-324, 1e-300, 1e-9, 0.5, 1.0, 7.0, 1e12, 1e49, 1e50, -1.0, -1e50)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(-1e50, 1e50) | TEXTS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXTS, children, max_size=3),
    max_leaves=8,
)


def in_range(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats the reader accepts for a field of range low..high, its extremes often."""
    return st.sampled_from([v for v in EXTREMES if low <= v <= high]) | st.floats(low, high)


SETTINGS = st.fixed_dictionaries(
    {
        "epochs": st.integers(1, 10_000),
        "batch_size": st.integers(1, 1_000_000),
        "optimizer": st.sampled_from(OPTIMIZERS),
        "learning_rate": st.none() | st.floats(1e-300, 1e300),
        "schedule": st.sampled_from(SCHEDULES),
        "train_limit": st.none() | st.integers(1, 2**40),
        "test_limit": st.none() | st.integers(1, 2**40),
        "threads": st.none() | st.integers(1, 1024),
        "op_determinism": st.booleans(),
    }
)
JOBS = st.fixed_dictionaries(
    {
        "variant": st.sampled_from(["single-dense", "two-dense", "cnn"]) | TEXTS,
        "backend": st.sampled_from(BACKENDS),
        "device": st.sampled_from(DEVICES),
        "seed": st.sampled_from([0, 1, MAX_SEED]) | st.integers(0, MAX_SEED),
        "settings": SETTINGS,
        "dataset": st.just("mnist") | TEXTS,
        "dataset_digest": st.just("") | TEXTS,
        "repeat": st.integers(0, 3),
    }
)
SQUARE = st.integers(1, 12).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, 2**40), min_size=n, max_size=n), min_size=n,
                       max_size=n)
)  # fmt: skip
RECORD_FIELDS = {
    **{name: st.none() | in_range(low, high) for name, (low, high) in RANGES.items()},
    **{
        name: st.lists(in_range(low, high), max_size=6) for name, (low, high) in ITEM_RANGES.items()
    },
    **{name: st.none() | st.integers(0, 2**63 - 1) | st.integers(0, 20) for name in COUNTS},
    "error": st.none() | TEXTS,
    "device": st.sampled_from([None, "cpu", "gpu"]),
    "inference": st.lists(st.dictionaries(TEXTS, JSON, max_size=3), max_size=3),
    "latency_ms": st.none()
    | st.fixed_dictionaries(
        {key: in_range(0.0, MAX_VALUE) for key in LATENCY_KEYS},
        optional={"queries": in_range(0.0, 1e9), "x": in_range(-1e50, 1e50)},
    ),
    "time_to_accuracy": st.lists(st.dictionaries(TEXTS, JSON, max_size=3), max_size=3),
    "weights_sha256": st.none() | TEXTS,
    "predictions_sha256": st.none() | TEXTS,
    "op_determinism": st.lists(TEXTS, max_size=3),
    "deterministic": st.none() | st.booleans(),
    "threads": st.dictionaries(TEXTS, JSON, max_size=3),
    "contention": st.none() | st.dictionaries(TEXTS, in_range(-1e50, 1e50)),
    "contended": st.booleans(),
    "confusion_matrix": st.none() | SQUARE,
    "started_utc": st.none() | TEXTS,
}
# One value the reader refuses, put into an otherwise accepted record now and then.
REFUSED_VALUES = [
    ("test_accuracy", 1.0000001),
    ("test_accuracy", -1e-9),
    ("train_seconds", -1.0),
    ("train_samples_per_second", 1e51),
    ("test_loss", -1e300),
    ("test_samples", -1),
    ("params", -(2**63)),
    ("accuracy_curve", [0.5, 2.0]),
    ("epoch_seconds", [1.0, -0.5]),
    ("loss_curve", [None, 1e60]),
    ("confusion_matrix", []),
    ("confusion_matrix", [[]]),
    ("confusion_matrix", [[1, 2], [3]]),
    ("confusion_matrix", [[1, 2, 3], [4, 5, 6]]),
    ("confusion_matrix", [[1, -2], [3, 4]]),
    ("latency_ms", {"p50": 1.0}),
    ("latency_ms", {"p50": 1.0, "p95": -2.0, "p99": 3.0}),
    ("misclassified", [[0, 1]]),
    ("misclassified", [[-1, 0, 1]]),
    ("misclassified", [[0, 1, 2, 3]]),
    ("job.backend", "theano"),
    ("job.device", "tpu"),
]


@st.composite
def records(draw) -> dict[str, Any]:
    """A record the reader accepts (now and then one it refuses): any status with any subset of
    metrics, extreme numbers, a confusion matrix of any size that agrees with `test_samples`,
    misclassified digits within the test set and classes."""
    record = draw(
        st.fixed_dictionaries(
            {"job": JOBS, "status": st.sampled_from(STATUSES)}, optional=RECORD_FIELDS
        )
    )
    matrix = record.get("confusion_matrix")
    if matrix is not None and "test_samples" in record:
        record["test_samples"] = sum(map(sum, matrix))
    tested = sum(map(sum, matrix)) if matrix else record.get("test_samples")
    classes = len(matrix) if matrix else 10
    if tested and draw(st.booleans()):
        digit = st.tuples(st.integers(0, tested - 1), *[st.integers(0, classes - 1)] * 2)
        record["misclassified"] = [list(t) for t in draw(st.lists(digit, max_size=30))]
    if draw(st.integers(0, 7)) == 0:
        name, value = draw(st.sampled_from(REFUSED_VALUES))
        target = record["job"] if name.startswith("job.") else record
        target[name.removeprefix("job.")] = value
    return record


ENVIRONMENTS = st.fixed_dictionaries(
    {},
    optional={
        "cpu": st.dictionaries(st.sampled_from(["model", "cores"]) | TEXTS, JSON, max_size=3),
        "gpus": st.lists(JSON | st.dictionaries(st.just("name") | TEXTS, JSON), max_size=3),
        "git": st.dictionaries(st.sampled_from(["commit", "dirty"]) | TEXTS, JSON, max_size=2),
        "dataset": st.fixed_dictionaries(
            {}, optional={"class_names": st.lists(JSON, max_size=12), "name": JSON}
        ),
        "machine_id": JSON,
        "command": JSON,
        "dataset_digests": JSON,
    },
)
# An environment block of the wrong shape, which the reader refuses.
ODD_ENVIRONMENTS = st.dictionaries(
    st.sampled_from(["cpu", "gpus", "git", "dataset", "backends"]),
    st.integers() | TEXTS,
    min_size=1,
    max_size=2,
) | st.just({"dataset": {"class_names": "0123456789"}})


@st.composite
def run_files(draw) -> dict[str, Any]:
    """A run file the reader accepts (now and then one it refuses), whose content may be
    anything but sensible: no records, duplicated ones, pending jobs already recorded..."""
    recs = draw(st.lists(records(), max_size=4))
    if recs and draw(st.booleans()):  # the same record twice, or under another status
        again = copy.deepcopy(draw(st.sampled_from(recs)))
        again["status"] = draw(st.sampled_from(STATUSES))
        recs.insert(draw(st.integers(0, len(recs))), again)
    pending = draw(st.lists(JOBS, max_size=2))
    if recs and draw(st.booleans()):  # pending jobs the records already hold
        pending.append(copy.deepcopy(draw(st.sampled_from(recs))["job"]))
    run = {
        "schema_version": SCHEMA_VERSION,
        "run_id": draw(st.just("20261125T000000Z-abcdef") | TEXTS),
        "started_utc": draw(TEXTS),
        "config": draw(st.dictionaries(TEXTS, JSON, max_size=4)),
        "environment": draw(ENVIRONMENTS if draw(st.integers(0, 9)) else ODD_ENVIRONMENTS),
        "records": recs,
        "aggregates": draw(st.lists(st.dictionaries(TEXTS, JSON, max_size=3), max_size=2)),
        "status": draw(st.sampled_from(RUN_STATUSES)),
        "finished_utc": draw(st.none() | TEXTS),
        "pending": pending,
        "stop_reason": draw(st.none() | TEXTS),
    }
    return run


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mnist_digest() -> str:
    return dataset_digest(data.load("mnist").digests)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real run file of one tiny record (one epoch on 2,000 samples)."""
    folder = tmp_path_factory.mktemp("tiny")
    code, _, err = mnist_bench(
        "run", "-b", BACKEND, "-v", "single-dense", "--epochs", "1", "--train-limit", "2000",
        "--test-limit", "500", "--infer-batch-sizes", "32", "--results-dir", folder,
    )  # fmt: skip
    assert code == 0, err
    (path,) = folder.glob("*.json")
    return path


# ------------------------------------------------------------------- generated run files
@PROPERTIES
@given(run=run_files())
def test_generated_run_files_text_formats_compare_check(tmp_path, run):
    path = write(tmp_path / "gen.json", run)
    every_reader(path, tmp_path, html=False)
    code = mnist_bench("report", path, "--format", "csv")[0]
    if not accepted(path):
        assert code == 2
    else:  # what the reader takes, the published schema (`mnist-bench schema`) takes too
        SCHEMA.validate(run)
        if any(not r["job"]["repeat"] for r in run["records"]):
            assert code == 0


@settings(PROPERTIES, max_examples=12)
@given(run=run_files())
def test_generated_run_files_html(tmp_path, run):
    path = write(tmp_path / "gen.json", run)
    accepted(path)
    assert_clean(mnist_bench("report", path, *HTML), {0, 2}, [path])


@settings(PROPERTIES, max_examples=10)
@given(run=run_files())
def test_generated_run_files_in_the_time_estimate(tmp_path, run):
    path = write(tmp_path / "gen.json", run)
    err = estimate_reads(path, tmp_path)
    if not accepted(path):  # skipped, and a note says so
        assert "time estimate skips" in err and "earlier.json" in err, err


def resumable(job: dict[str, Any]) -> dict[str, Any]:
    """A tiny configuration whose one job is `job`'s (its records done: nothing trains)."""
    s = job["settings"]
    return {
        "variants": [job["variant"]],
        "backends": [job["backend"]],
        "devices": [job["device"]],
        "seeds": [job["seed"]],
        "epochs": s["epochs"],
        "batch_size": s["batch_size"],
        "optimizer": s["optimizer"],
        "learning_rate": s["learning_rate"],
        "schedule": s["schedule"],
        "train_limit": s["train_limit"],
        "test_limit": s["test_limit"],
        "threads": s["threads"],
        "infer_batch_sizes": [32],
    }


@settings(PROPERTIES, max_examples=15)
@given(run=run_files(), data=st.data())
def test_generated_run_files_resume(tmp_path, mnist_digest, run, data):
    """`run --resume` on a file whose configuration's jobs are all among its records (so
    nothing trains), beside whatever else the file holds: it finishes or refuses cleanly."""
    job = data.draw(JOBS)
    job.update(
        variant="single-dense", dataset="mnist", dataset_digest=mnist_digest, repeat=0,
        backend=BACKEND,
    )  # fmt: skip
    job["settings"]["op_determinism"] = False
    record = data.draw(records())
    record["job"] = job
    run["records"].insert(data.draw(st.integers(0, len(run["records"]))), record)
    run["config"] = resumable(job)
    path = write(tmp_path / "resume.json", run)
    result = mnist_bench("run", "--resume", path)
    assert_clean(result, {0, 1, 2}, [path])
    event(f"resume: exit {result[0]} {result[2][-90:]}")
    if result[0] != 2:
        assert "0 record(s) to go" in result[1]
        assert load_run(path).status == "complete"


# ----------------------------------------------------------------------- mutated real files
def _records(run: dict) -> list[dict]:
    return run["records"]


def _set_all(field: str, value: Any) -> Callable[[dict], None]:
    def mutate(run: dict) -> None:
        for r in _records(run):
            r[field] = value

    return mutate


def _first(field: str, value: Any) -> Callable[[dict], None]:
    def mutate(run: dict) -> None:
        _records(run)[0][field] = value

    return mutate


def _del_first(field: str) -> Callable[[dict], None]:
    def mutate(run: dict) -> None:
        _records(run)[0].pop(field, None)

    return mutate


def _swap_accuracy_and_seconds(run: dict) -> None:
    for r in _records(run):
        r["test_accuracy"], r["train_seconds"] = r.get("train_seconds"), r.get("test_accuracy")


def _duplicate_records(run: dict) -> None:
    run["records"] = _records(run) + copy.deepcopy(_records(run))


def _shuffle(run: dict) -> None:
    run["records"] = list(reversed(_records(run)))
    for r in _records(run):
        if r.get("confusion_matrix"):
            r["confusion_matrix"] = [list(reversed(row)) for row in r["confusion_matrix"]]


def _ragged_confusion(run: dict) -> None:
    for r in _records(run):
        if r.get("confusion_matrix"):
            r["confusion_matrix"][-1] = r["confusion_matrix"][-1][:-1]


def _smaller_confusion(run: dict) -> None:  # one seed of a row has 3 classes, another 10
    r = next((r for r in _records(run) if r.get("confusion_matrix")), None)
    if r is not None:
        r["confusion_matrix"] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        r["test_samples"], r["misclassified"] = 3, []


def _negative_confusion(run: dict) -> None:
    for r in _records(run):
        if r.get("confusion_matrix"):
            r["confusion_matrix"][0][0] = -5


def _misclassified_out_of_range(run: dict) -> None:
    for r in _records(run):
        r["misclassified"] = [[10**9, 99, -1], [0, 1]]


def _pending_duplicates(run: dict) -> None:
    run["status"] = "interrupted"
    run["pending"] = [copy.deepcopy(r.get("job", r)) for r in _records(run)]


def _environment_scalars(run: dict) -> None:
    run["environment"] = {k: 7 for k in run["environment"]} | {"gpus": "A100", "dataset": [1]}


def _no_records(run: dict) -> None:
    run["records"] = []


def _only_failed(run: dict) -> None:
    for r in _records(run):
        r["status"] = "failed"
        r["error"] = None


def _empty_strings(run: dict) -> None:
    run["run_id"] = ""
    for r in _records(run):
        job = r.get("job", r)
        job["variant"], job["dataset"] = "", ""


def _huge_strings(run: dict) -> None:
    run["run_id"] = "ü" * 1000
    for r in _records(run):
        r["error"] = "✓" * 1000
        r.get("job", r)["variant"] = "|<&>\n/../" * 30


def _string_for_number(run: dict) -> None:
    _records(run)[0]["test_accuracy"] = "0.9"


MUTATIONS: dict[str, Callable[[dict], None]] = {
    "no records": _no_records,
    "records deleted field test_accuracy": _del_first("test_accuracy"),
    "records deleted field status": _del_first("status"),
    "records a string for a number": _string_for_number,
    "records swapped accuracy and seconds": _swap_accuracy_and_seconds,
    "records duplicated": _duplicate_records,
    "records shuffled": _shuffle,
    "all failed, no error": _only_failed,
    "ok records with no metrics": _set_all("test_accuracy", None),
    "negative train seconds": _set_all("train_seconds", -3.0),
    "zero train seconds": _set_all("train_seconds", 0.0),
    "huge train seconds": _set_all("train_seconds", 1.7e308),
    "huge throughput": _set_all("train_samples_per_second", 1.7e308),
    "tiny throughput": _set_all("train_samples_per_second", 5e-324),
    "negative throughput": _set_all("infer_samples_per_second", -1.0),
    "accuracy above one": _set_all("test_accuracy", 42.0),
    "accuracy negative": _first("test_accuracy", -0.5),
    "negative test count": _set_all("test_samples", -10),
    "negative params": _set_all("params", -1),
    "epoch lists of different lengths": _set_all("accuracy_curve", [0.1, 0.2, 0.3, 0.4, 0.5]),
    "epochs without times": _set_all("epoch_seconds", []),
    "confusion ragged": _ragged_confusion,
    "confusion of another size in one row": _smaller_confusion,
    "confusion negative": _negative_confusion,
    "confusion empty": _set_all("confusion_matrix", [[]]),
    "confusion not summing to the test count": _set_all("test_samples", 3),
    "misclassified out of range": _misclassified_out_of_range,
    "pending duplicating records": _pending_duplicates,
    "environment of scalars": _environment_scalars,
    "empty strings": _empty_strings,
    "very long unicode strings": _huge_strings,
}
# Refused by the schema or by the consistency check (exit 2, naming the file and this field),
# where the file has what the mutation changes (the trimmed gate fixtures hold no matrices).
REFUSED = {
    "records a string for a number": ("test_accuracy", None),
    "negative train seconds": ("train_seconds", None),
    "negative throughput": ("infer_samples_per_second", None),
    "accuracy above one": ("test_accuracy", None),
    "accuracy negative": ("test_accuracy", None),
    "negative test count": ("test_samples", None),
    "negative params": ("params", None),
    "confusion ragged": ("confusion_matrix", "confusion_matrix"),
    "confusion negative": ("confusion_matrix", "confusion_matrix"),
    "confusion empty": ("confusion_matrix", None),
    "confusion not summing to the test count": ("confusion_matrix", "confusion_matrix"),
    "misclassified out of range": ("misclassified", None),
}


def mutated(source: Path, name: str, folder: Path) -> Path:
    run = json.loads(source.read_text())
    MUTATIONS[name](run)
    return write(folder / f"{source.stem}-mutated.json", run)


# Mutations whose HTML report (figures summed over seeds, scales, labels) is worth its time.
HTML_MUTATIONS = {
    "ok records with no metrics",
    "tiny throughput",
    "confusion of another size in one row",
    "very long unicode strings",
}
# Mutations `--resume` finishes without training (its one record is still there), or refuses.
RESUME_MUTATIONS = [
    "records deleted field test_accuracy",
    "records duplicated",
    "all failed, no error",
    "epoch lists of different lengths",
    "epochs without times",
    "misclassified out of range",
    "pending duplicating records",
]
# ... and those it trains again for (the record's job is gone or renamed).
RESUME_TRAINS = ["no records", "empty strings"]


def _has(run: dict, field: str | None) -> bool:
    return field is None or any(r.get(field) for r in _records(run))


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutated_real_files(tmp_path, name):
    """Each mutation on each stored real file: every reader handles it, and the time estimate
    reads them all at once (skipping the bad ones with a note)."""
    runs = tmp_path / "estimate" / "results" / "runs"
    runs.mkdir(parents=True)
    for source in REAL_FILES:
        path = mutated(source, name, runs)
        every_reader(path, tmp_path, html=source == GOOD and name in HTML_MUTATIONS)
        field, needs = REFUSED.get(name, (None, None))
        if field and _has(json.loads(source.read_text()), needs):
            code, _, err = mnist_bench("report", path, "--format", "csv")
            assert code == 2 and field in err, (source, err)
    with contextlib.chdir(tmp_path / "estimate"):
        assert_clean(mnist_bench("list", "--suite", SUITE, "--no-probe"), {0}, [])


def resume_mutated(tiny_run: Path, name: str, folder: Path) -> tuple[int, str, str]:
    """`run --resume` of the tiny run, mutated and marked interrupted, alone in `folder`: it
    finishes (writing nothing outside `folder`) or refuses cleanly."""
    folder.mkdir()
    path = mutated(tiny_run, name, folder)
    run = json.loads(path.read_text())
    run["status"] = "interrupted"
    write(path, run)
    before = set(folder.parent.parent.rglob("*"))
    result = mnist_bench("run", "--resume", path)
    assert_clean(result, {0, 1, 2}, [path])
    if result[0] != 2:
        assert load_run(path).status == "complete"
        new = set(folder.parent.parent.rglob("*")) - before
        assert all(p.is_relative_to(folder) for p in new), new
    return result


@needs_backend
@pytest.mark.parametrize("name", RESUME_MUTATIONS)
def test_mutated_tiny_run(tmp_path, tiny_run, name):
    """A run file this version wrote, mutated: every reader and format handles it, and
    `--resume` of it (marked interrupted, its one record done) finishes without training or
    refuses in one line."""
    path = mutated(tiny_run, name, tmp_path)
    every_reader(path, tmp_path, html=name in HTML_MUTATIONS or name == RESUME_MUTATIONS[0])
    code, out, _ = resume_mutated(tiny_run, name, tmp_path / "resume")
    assert code == 2 or "0 record(s) to go" in out


@pytest.mark.slow
@needs_backend
@pytest.mark.parametrize("name", RESUME_TRAINS)
def test_mutated_tiny_run_resume_trains(tmp_path, tiny_run, name):
    code, out, _ = resume_mutated(tiny_run, name, tmp_path / "resume")
    assert code == 0 and "1 record(s) to go" in out


# ------------------------------------------------------------------------- the time estimate
def test_estimate_learns_from_schema_2_files_and_skips_bad_ones(tmp_path):
    """It reads through `load_run`: a schema-2 file's jobs are learnt from (the raw-JSON reader
    looked for fields schema 2 moved into the job, and learnt nothing), a bad file is skipped
    with a note naming it and its field."""
    folder = tmp_path / "runs"
    folder.mkdir()
    baseline = json.loads((ROOT / "results" / "baseline" / "ci.json").read_text())
    assert baseline["schema_version"] == 2
    write(folder / "ci.json", baseline)
    bad = copy.deepcopy(baseline)
    bad["records"][0]["train_samples_per_second"] = -1.0
    write(folder / "bad.json", bad)
    notes: list[str] = []
    learnt = estimate.history([folder], warn=notes.append)
    rates = {
        (r["job"]["variant"], r["job"]["backend"], r["job"]["settings"]["batch_size"])
        for r in baseline["records"]
    }
    assert set(learnt) == rates and all(0 < v < 1 for v in learnt.values())
    assert notes == [
        f"time estimate skips {folder / 'bad.json'}: inconsistent run file "
        "(records[0].train_samples_per_second: -1.0 is outside 0..1e+50)"
    ]
