"""`mnist-bench export`: github-action-benchmark and Bencher JSON checked against their documented
shapes on the committed run files, and MLflow against a real tracking server (SQLite store,
artifacts served by the server) started here, read back through MLflow's own client."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
from conftest import FRAMEWORKS, ROOT, cli_importing_none_of, run_cli
from mnist_bench import cli
from mnist_bench.analyse.rows import METRICS
from mnist_bench.publish import export
from mnist_bench.runfile.records import load_run
from scipy import stats as scipy_stats

COMMITTED = sorted(
    [
        *(ROOT / "results" / "baseline").glob("*.json"),
        *(ROOT / "results" / "published").rglob("*.json"),
        *(ROOT / "tests" / "fixtures" / "report").glob("*.json"),
        *(ROOT / "tests" / "fixtures" / "schema1").glob("*.json"),  # migrated on read
    ]
)
CI = ROOT / "results" / "baseline" / "ci.json"
WITH_FAILED = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"  # a failed record, a repeat
EIGHT_EPOCHS = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "cnn-strong.json"

# github-action-benchmark's custom tools (customBiggerIsBetter / customSmallerIsBetter): a list of
# {name, unit, value, range?, extra?} (its README, and `BenchmarkResult` in its src/extract.ts:
# name, unit, range and extra strings, value a number); nothing else.
GAB_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "unit": {"type": "string"},
            "value": {"type": "number"},
            "range": {"type": "string"},
            "extra": {"type": "string"},
        },
        "required": ["name", "unit", "value"],
        "additionalProperties": False,
    },
}
# Bencher Metric Format, as its reference page gives the JSON Schema
# (https://bencher.dev/bmf.json), with a measure's keys held to the three it documents and the
# documented lengths (benchmark name 1,024 characters, measure slug 64).
BMF_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"maxLength": 1024},
    "patternProperties": {
        ".+": {
            "type": "object",
            "propertyNames": {"maxLength": 64, "pattern": "^[a-z0-9-]+$"},
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "lower_value": {"type": "number"},
                        "upper_value": {"type": "number"},
                    },
                    "required": ["value"],
                    "additionalProperties": False,
                }
            },
        }
    },
}


def export_json(capsys, *args: str) -> tuple[object, str]:
    """`mnist-bench export ARGS` in this process: the parsed JSON on stdout, and stderr."""
    code = cli.main(["export", *map(str, args)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out), out.err


def fails(capsys, *args: str) -> str:
    code = cli.main(["export", *map(str, args)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("mnist-bench export: error: "), err
    return err


# ------------------------------------------------------------------------------ JSON formats
def test_every_metric_has_a_unit():
    assert set(export.UNITS) == {m.name for m in METRICS}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("direction", ["bigger", "smaller"])
def test_github_action_benchmark_matches_its_documented_shape(capsys, path, direction):
    data, _ = export_json(capsys, path, "--to", "github-action-benchmark", "--direction", direction)
    jsonschema.Draft7Validator(GAB_SCHEMA).validate(data)
    names = [entry["name"] for entry in data]
    assert len(names) == len(set(names))  # one chart per name: none may repeat
    wanted = {
        m.name for m in METRICS if m.headline and m.higher_is_better == (direction == "bigger")
    }
    assert {name.rsplit(" · ", 1)[1] for name in names} == wanted


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_bencher_matches_its_documented_shape(capsys, path):
    data, _ = export_json(capsys, path, "--to", "bencher", "--metric", "all")
    jsonschema.Draft7Validator(BMF_SCHEMA).validate(data)
    for measures in data.values():
        for measure in measures.values():
            if "lower_value" in measure:
                assert measure["lower_value"] <= measure["value"] <= measure["upper_value"]


def test_values_are_means_over_seeds_with_their_95_percent_interval(capsys):
    run = load_run(CI)
    seeds = [r for r in run.records if (r.variant, r.backend) == ("two-dense", "jax")]
    assert len(seeds) == 3
    accuracy = [100 * r.test_accuracy for r in seeds]
    mean = sum(accuracy) / 3
    sd = math.sqrt(sum((a - mean) ** 2 for a in accuracy) / 2)
    half = scipy_stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    name = "two-dense · jax · cpu · epochs=2"

    gab, _ = export_json(capsys, CI, "--to", "github-action-benchmark")
    assert len(gab) == 9 * 3  # 9 configurations x 3 bigger-is-better headline metrics
    entry = next(e for e in gab if e["name"] == f"{name} · test_accuracy")
    assert entry["unit"] == "%"
    assert entry["value"] == pytest.approx(mean, rel=1e-9)
    assert float(entry["range"].removeprefix("± ")) == pytest.approx(half, rel=1e-5)
    assert "seeds: 3 (0, 1, 2)" in entry["extra"]
    assert f"commit: {run.environment['git']['commit'][:12]} (dirty)" in entry["extra"]
    assert f"run: {run.run_id}" in entry["extra"]

    bmf, _ = export_json(capsys, CI, "--to", "bencher")
    assert len(bmf) == 9
    measure = bmf[name]["test-accuracy"]
    assert measure["value"] == pytest.approx(mean, rel=1e-9)
    assert measure["lower_value"] == pytest.approx(mean - half, rel=1e-6)
    assert measure["upper_value"] == pytest.approx(mean + half, rel=1e-6)
    seconds = [r.train_seconds for r in seeds]
    assert bmf[name]["train-seconds"]["value"] == pytest.approx(sum(seconds) / 3, rel=1e-9)
    assert set(bmf[name]) == {"test-accuracy", "train-seconds", "train-samples-per-second",
                              "infer-samples-per-second"}  # fmt: skip


def test_one_seed_has_no_interval(capsys):
    gab, _ = export_json(capsys, EIGHT_EPOCHS, "--to", "github-action-benchmark")
    assert gab and not any("range" in entry for entry in gab)
    bmf, _ = export_json(capsys, EIGHT_EPOCHS, "--to", "bencher")
    assert all(set(m) == {"value"} for measures in bmf.values() for m in measures.values())


def test_names_depend_on_the_configuration_alone(capsys):
    """A series keeps its name whatever else is exported beside it."""
    alone, _ = export_json(capsys, CI, "--to", "bencher")
    together, _ = export_json(capsys, CI, WITH_FAILED, EIGHT_EPOCHS, "--to", "bencher")
    assert set(alone) <= set(together)
    assert "single-dense · tensorflow · cpu · epochs=2" in alone
    assert (
        "cnn-strong · torch · cpu · epochs=8 · batch_size=128 · learning_rate=0.004 · "
        "schedule=one-cycle"
    ) in together


def test_failed_records_are_left_out_with_a_note(capsys):
    data, err = export_json(capsys, WITH_FAILED, "--to", "bencher")
    assert (
        "note: left out 1 record(s) that did not finish ok, e.g. jax · cnn · seed 1: failed" in err
    )
    cnn = next(name for name in data if name.startswith("cnn · jax"))
    assert data[cnn]["test-accuracy"].keys() == {"value"}  # only seed 0 finished: no interval


def test_runs_from_several_commits_are_averaged_with_a_warning(capsys):
    gate = ROOT / "tests" / "fixtures" / "gate"
    _, err = export_json(capsys, gate / "baseline.json", gate / "regressed.json", "--to", "bencher")
    assert "averaged over 2 commits" in err


def test_json_export_imports_no_framework_matplotlib_or_mlflow(tmp_path):
    banned = (*FRAMEWORKS, "matplotlib", "mlflow")
    out = cli_importing_none_of(banned, "export", str(CI), "--to", "bencher")
    assert json.loads(out.stdout)


def test_output_is_written_and_never_replaced_without_force(capsys, tmp_path):
    target = tmp_path / "bmf.json"
    assert cli.main(["export", str(CI), "--to", "bencher", "-o", str(target)]) == 0
    assert "export: " in capsys.readouterr().err
    first = json.loads(target.read_text())
    assert len(first) == 9
    mine = tmp_path / "notes.json"
    mine.write_text("my notes")
    err = fails(capsys, CI, "--to", "bencher", "-o", mine)
    assert "exists; pass --force to replace it" in err
    assert mine.read_text() == "my notes"
    assert cli.main(["export", str(CI), "--to", "bencher", "-o", str(mine), "--force"]) == 0
    assert json.loads(mine.read_text()) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bmf.json", "notes.json"]  # no temp


@pytest.mark.parametrize(
    "args, message",
    [
        (["--to", "bencher", "--metric", "speed"], "unknown metric 'speed'; valid: all, "),
        (
            ["--to", "github-action-benchmark", "--metric", "train_seconds"],
            "train_seconds is smaller-is-better: export it with --direction smaller",
        ),
        (["--to", "bencher", "--direction", "smaller"], "--direction goes with --to github-"),
        (["--to", "bencher", "--tracking-uri", "http://x"], "--tracking-uri goes with --to mlflow"),
        (["--to", "mlflow", "-o", "x.json"], "--output goes with the JSON formats"),
        (["--to", "bencher", "--force"], "--force goes with --output FILE"),
        (["--to", "bencher", "-o", "/no/such/dir/x.json"], "/no/such/dir/x.json: cannot write"),
        (["--to", "mlflow", "--tracking-uri", "foo://bar"], "--tracking-uri foo://bar: "),
        (["--to", "mlflow", "--tracking-uri", "http://:80"], "--tracking-uri http://:80: no host"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, monkeypatch, args, message):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert message in fails(capsys, CI, *args)


def test_bad_run_file_is_one_line_and_skip_bad_goes_on(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert "malformed JSON" in fails(capsys, bad, "--to", "bencher")
    data, err = export_json(capsys, bad, CI, "--to", "bencher", "--skip-bad")
    assert len(data) == 9 and "skipped" in err


def test_mlflow_needs_a_tracking_uri(capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert "needs --tracking-uri URI" in fails(capsys, CI, "--to", "mlflow")


def test_mlflow_not_installed_says_which_extra(tmp_path):
    """A real import failure: a package named mlflow that cannot be imported comes first on
    the path."""
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "__init__.py").write_text("raise ImportError('no mlflow here')\n")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = run_cli("export", str(CI), "--to", "mlflow", "--tracking-uri", uri,
                  env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "mnist-bench export: error: --to mlflow needs MLflow's client: "
        "pip install 'mnist-bench[mlflow]'"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_within_seconds():
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    out = run_cli("export", str(CI), "--to", "mlflow", "--tracking-uri", uri, timeout=120)
    took = time.monotonic() - start
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        f"mnist-bench export: error: cannot reach the MLflow tracking server at {uri} "
        "(Connection refused)"
    )
    assert out.stdout == ""
    assert took < 30, took  # the process's start included: MLflow's own retries take minutes


# ------------------------------------------------------------------------------------ MLflow
QUIET = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1: SQLite backend store, artifacts served by the
    server from a temporary folder. Waits at most 180 s for it; always torn down with its whole
    process group."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, **QUIET, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                if no_proxy.open(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not up in 180 s: {(folder / 'server.log').read_text()}")
            time.sleep(0.5)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in QUIET.items():
                mp.setenv(name, value)
            yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _export(uri: str, experiment: str, *paths: Path) -> str:
    out = run_cli(
        "export", *map(str, paths), "--to", "mlflow", "--tracking-uri", uri,
        "--experiment", experiment, env=QUIET, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_mlflow_one_run_per_record_and_no_duplicates(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    first = _export(mlflow_server, "exported", WITH_FAILED, EIGHT_EPOCHS)
    assert first.splitlines() == [
        f"mlflow: 10 run(s) created, 0 already there (experiment 'exported' at {mlflow_server})"
    ]  # and nothing else on stdout
    again = _export(mlflow_server, "exported", WITH_FAILED, EIGHT_EPOCHS)
    assert "0 run(s) created, 10 already there" in again

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("exported")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(runs) == 10  # 7 + 3 records, none twice
    keys = {run.data.tags[export.KEY_TAG] for run in runs}
    assert len(keys) == 10

    by_file = {p: load_run(p) for p in (WITH_FAILED, EIGHT_EPOCHS)}
    checked = 0
    for path, run_file in by_file.items():
        commit = run_file.environment["git"]["commit"]
        seen: dict[tuple, int] = {}
        for record in run_file.records:
            occurrence = seen[record.key] = seen.get(record.key, -1) + 1
            key = export.record_key(run_file.run_id, record, occurrence)
            (run,) = [r for r in runs if r.data.tags[export.KEY_TAG] == key]
            tags, params = run.data.tags, run.data.params
            assert run.info.run_name == record.job.label()
            assert tags["mnist_bench.run_id"] == run_file.run_id
            assert tags["mlflow.source.git.commit"] == commit
            assert tags["mnist_bench.machine_id"] == run_file.environment["machine_id"]
            assert (
                tags[f"mnist_bench.{record.backend}"]
                == (run_file.environment["backends"][record.backend]["version"])
            )
            assert params["variant"] == record.variant and params["seed"] == str(record.seed)
            assert params["epochs"] == str(record.settings.epochs)
            assert params["batch_size"] == str(record.settings.batch_size)
            assert params["repeat"] == str(record.repeat)
            artifacts = client.list_artifacts(run.info.run_id, "run")
            assert [a.path for a in artifacts] == [f"run/{path.name}"]
            if record.status != "ok":
                assert run.info.status == "FAILED"
                assert tags["mnist_bench.error"] == record.error
                continue
            assert run.info.status == "FINISHED"
            history = client.get_metric_history(run.info.run_id, "epoch_test_accuracy")
            assert len(history) == record.settings.epochs
            assert [(m.step, m.value) for m in history] == list(enumerate(record.accuracy_curve, 1))
            seconds = client.get_metric_history(run.info.run_id, "epoch_seconds")
            assert [m.value for m in seconds] == record.epoch_seconds
            assert run.data.metrics["test_accuracy"] == record.test_accuracy
            assert run.data.metrics["train_seconds"] == record.train_seconds
            (png,) = client.list_artifacts(run.info.run_id, "figures")
            assert png.path.endswith("-confusion.png")
            checked += 1
    assert checked == 9

    # the artifacts are the files: the run file byte for byte, the heatmap a PNG
    run = next(r for r in runs if r.data.tags["mnist_bench.run_file"] == EIGHT_EPOCHS.name)
    got = Path(client.download_artifacts(run.info.run_id, "run", str(tmp_path)))
    assert (got / EIGHT_EPOCHS.name).read_bytes() == EIGHT_EPOCHS.read_bytes()
    figure = client.list_artifacts(run.info.run_id, "figures")[0].path
    png = Path(client.download_artifacts(run.info.run_id, figure, str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _png(seed: int) -> bytes:
    """A real 1 x 1 grey PNG, its shade from `seed`."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes([0, seed % 256]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_mlflow_remakes_an_unfinished_run_and_takes_the_figures_run_saved(mlflow_server, tmp_path):
    """A run left RUNNING by an export cut short is deleted and made again; the figures `run`
    saved beside the run file (RUN/<stem>-confusion.png, -errors.png) are the ones uploaded."""
    from mlflow import MlflowClient
    from mnist_bench.render.run_figures import stem

    path = tmp_path / "runs" / EIGHT_EPOCHS.name
    path.parent.mkdir()
    path.write_bytes(EIGHT_EPOCHS.read_bytes())
    run_file = load_run(path)
    saved = path.with_suffix("")
    saved.mkdir()
    for i, record in enumerate(run_file.records):
        (saved / f"{stem(record)}-confusion.png").write_bytes(_png(i))
    first = run_file.records[0]
    (saved / f"{stem(first)}-errors.png").write_bytes(_png(99))

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.create_experiment("interrupted")
    key = export.record_key(run_file.run_id, first)
    cut_short = client.create_run(experiment_id, tags={export.KEY_TAG: key}).info.run_id

    out = _export(mlflow_server, "interrupted", path)
    assert "2 run(s) created, 0 already there, 1 left unfinished by an earlier export" in out
    runs = client.search_runs([experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert cut_short not in {r.info.run_id for r in runs}
    for i, record in enumerate(run_file.records):
        key = export.record_key(run_file.run_id, record)
        (run,) = [r for r in runs if r.data.tags[export.KEY_TAG] == key]
        names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "figures"))
        wanted = [f"figures/{stem(record)}-confusion.png"]
        if i == 0:
            wanted.append(f"figures/{stem(record)}-errors.png")
        assert names == wanted
        got = client.download_artifacts(run.info.run_id, wanted[0], str(tmp_path / str(i)))
        assert Path(got).read_bytes() == _png(i)
