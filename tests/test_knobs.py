"""Keras performance knobs (jit_compile, dtype_policy, steps_per_execution) as settings: flags,
suite keys and grid lists, part of a job's key, applied and recorded by the worker, refused
where a backend cannot honour them, readable from run files written before them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BACKEND, ROOT, only_run, run_cli
from mnist_bench import cli
from mnist_bench.commands.run import options_from_args
from mnist_bench.core import identity
from mnist_bench.core.config import RunConfig, TrainSettings
from mnist_bench.execute import knobs, runner
from mnist_bench.plan import suite
from mnist_bench.publish import export
from mnist_bench.runfile.records import load_run

TINY = ("--epochs", "1", "--train-limit", "600", "--test-limit", "300", "--no-figures")
TINY += ("--infer-batch-sizes", "32")
BASELINE = ROOT / "results" / "baseline" / "ci.json"
DEFAULTS = {"jit_compile": "auto", "dtype_policy": "float32", "steps_per_execution": 1}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text('variants = ["two-dense"]\nbackends = ["jax"]\n' + text)
    return path


def one_line_exit_2(out) -> str:
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    return out.stderr


# ----------------------------------------------------------------------- flags and suites
def test_flags_reach_every_job():
    args = cli.build_parser().parse_args(
        ["run", "-v", "two-dense", "-b", "jax", "--jit-compile", "false"]
        + ["--dtype-policy", "mixed_bfloat16", "--steps-per-execution", "4"]
    )
    jobs = runner.expand_jobs(RunConfig(**options_from_args(args)))
    assert [j.settings.jit_compile for j in jobs] == ["false"]
    assert jobs[0].settings.dtype_policy == "mixed_bfloat16"
    assert jobs[0].settings.steps_per_execution == 4


@pytest.mark.parametrize(
    "flag, message",
    [
        (("--steps-per-execution", "0"), "steps_per_execution must be an integer >= 1"),
        (("--steps-per-execution", "two"), "invalid int value: 'two'"),
        (("--dtype-policy", "float8"), "invalid choice: 'float8'"),
        (("--jit-compile", "yes"), "invalid choice: 'yes'"),
    ],
)
def test_bad_flag_is_one_line_and_exit_2(tmp_path, flag, message):
    out = run_cli("run", "-v", "two-dense", *flag, "--results-dir", str(tmp_path / "runs"))
    assert message in one_line_exit_2(out)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[settings]\nsteps_per_execution = 0\n", "steps_per_execution must be an integer >= 1"),
        ('[settings]\ndtype_policy = "float8"\n', "unknown dtype_policy 'float8'; valid: float32"),
        ('[grid]\njit_compile = ["auto", "yes"]\n', "unknown jit_compile 'yes'; valid: auto"),
        ("[grid]\nsteps_per_execution = [1, 1]\n", "steps_per_execution lists 1 twice"),
        ('jit_compile = "true"\n', "unknown key 'jit_compile'"),
    ],
)
def test_bad_suite_key_is_one_line_and_exit_2(tmp_path, toml, message):
    path = write(tmp_path, toml)
    out = run_cli("run", "--suite", str(path), "--results-dir", str(tmp_path / "runs"))
    text = one_line_exit_2(out)
    assert f"{path}:" in text and message in text


def test_grid_lists_cross_and_each_point_is_its_own_configuration(tmp_path):
    path = write(
        tmp_path,
        '[grid]\njit_compile = ["auto", "false"]\ndtype_policy = ["float32", "mixed_float16"]\n'
        "steps_per_execution = [1, 4]\n",
    )
    jobs = runner.expand_jobs(suite.load(path))
    assert len(jobs) == 8
    assert len({j.config_key for j in jobs}) == 8 and len({j.key for j in jobs}) == 8
    combos = {
        (j.settings.jit_compile, j.settings.dtype_policy, j.settings.steps_per_execution)
        for j in jobs
    }
    assert len(combos) == 8
    assert identity.varying_fields(jobs)[-3:] == [
        "jit_compile", "dtype_policy", "steps_per_execution",
    ]  # fmt: skip
    a, b = (j for j in jobs if j.settings.jit_compile == "auto" and j.settings.dtype_policy
            == "float32")  # fmt: skip
    assert identity.differences([a], [b]) == ["steps_per_execution 1 → 4"]
    listed = run_cli("list", "--suite", str(path), "--no-probe")
    assert listed.returncode == 0, listed.stderr
    assert "jit_compile=false steps_per_execution=4 mixed_float16" in listed.stdout


# --------------------------------------------------------------------- old run files
def test_old_run_file_decodes_with_defaults_and_still_matches_the_baseline(tmp_path):
    raw = json.loads(BASELINE.read_text())
    assert not any(set(DEFAULTS) & set(r["job"]["settings"]) for r in raw["records"])
    for record in load_run(BASELINE).records:
        assert {k: getattr(record.settings, k) for k in DEFAULTS} == DEFAULTS
        assert record.knobs == {}
    # Today's writer spells the defaults out: the same configurations, so `check` passes ...
    raw["run_id"] = "20261204T000000Z-000001"  # another run of them
    for r in raw["records"]:
        r["job"]["settings"].update(DEFAULTS)
    (tmp_path / "same.json").write_text(json.dumps(raw))
    same = run_cli("check", str(tmp_path / "same.json"), "--baseline", str(BASELINE))
    assert same.returncode == 0, same.stdout + same.stderr
    # ... and with a knob changed nothing matches, and `check` says which setting differs.
    for r in raw["records"]:
        r["job"]["settings"]["steps_per_execution"] = 2
    (tmp_path / "other.json").write_text(json.dumps(raw))
    other = run_cli("check", str(tmp_path / "other.json"), "--baseline", str(BASELINE))
    assert other.returncode == 2, other.stdout + other.stderr
    assert "the configurations differ: steps_per_execution 1 → 2" in other.stderr


# ----------------------------------------------------------------------- the rule table
@pytest.mark.parametrize(
    "backend, device, settings, env, reason",
    [
        ("torch", "cpu", {"steps_per_execution": 2}, {}, "one step per call"),
        ("torch", "gpu", {"steps_per_execution": 8}, {}, "one step per call"),
        ("torch", "cpu", {"jit_compile": "true"}, {"CXX": "/nonexistent/g++"}, "C++ compiler"),
    ],
)
def test_each_refused_combination_says_why(monkeypatch, backend, device, settings, env, reason):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    why = knobs.refusal(backend, device, TrainSettings(**settings))
    assert why is not None and reason in why
    assert why.startswith(f"{next(iter(settings))}={next(iter(settings.values()))} on {backend}")


def test_torch_compile_on_gpu_is_refused_exactly_when_triton_is_missing():
    why = knobs.refusal("torch", "gpu", TrainSettings(jit_compile="true"))
    assert (why is None) == knobs._triton_found()
    assert why is None or "needs triton" in why


def test_what_every_backend_honours_runs():
    every = TrainSettings(jit_compile="true", dtype_policy="mixed_float16", steps_per_execution=4)
    for backend in ("jax", "tensorflow"):
        for device in ("cpu", "gpu"):
            assert knobs.refusal(backend, device, every) is None
    for policy in ("mixed_float16", "mixed_bfloat16"):  # with g++ (or $CXX) on the machine
        compiled = TrainSettings(jit_compile="true", dtype_policy=policy)
        assert knobs.refusal("torch", "cpu", compiled) is None
    assert knobs.refusal("torch", "cpu", TrainSettings()) is None


# -------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def knob_run(tmp_path_factory):
    """One worker, two jobs of two steps per call: a mixed-precision job before a float32 one
    (the policy is process-wide and must be set back)."""
    folder = tmp_path_factory.mktemp("knobs")
    path = folder / "s.toml"
    path.write_text(
        f'variants = ["two-dense"]\nbackends = ["{BACKEND}"]\n[settings]\n'
        'steps_per_execution = 2\n[grid]\ndtype_policy = ["mixed_bfloat16", "float32"]\n'
    )
    out = run_cli("run", "--suite", str(path), *TINY, "--results-dir", str(folder / "runs"))
    assert out.returncode == 0, out.stderr[-3000:]
    return out, only_run(folder / "runs"), folder / "runs"


def test_the_worker_applies_each_knob_and_records_what_was_in_force(knob_run):
    _, run, _ = knob_run
    assert len(run.records) == 2 and all(r.status == "ok" for r in run.records)
    for r in run.records:
        assert r.knobs["dtype_policy"] == r.settings.dtype_policy
        assert r.knobs["steps_per_execution"] == r.settings.steps_per_execution
        assert isinstance(r.knobs["jit_compile"], bool)  # what "auto" resolved to
    if BACKEND == "jax":
        assert all(r.knobs["jit_compile"] for r in run.records)


def test_the_table_report_and_export_name_a_varying_knob(knob_run):
    out, run, folder = knob_run
    table = " ".join(out.stdout.split())
    assert "two-dense [dtype_policy=mixed_bfloat16]" in table
    assert "two-dense [dtype_policy=float32]" in table
    names = {export.configuration_name(r) for r in run.records}
    assert any(n.endswith("dtype_policy=mixed_bfloat16 · steps_per_execution=2") for n in names)
    assert any(n.endswith("test_limit=300 · steps_per_execution=2") for n in names)  # float32
    report = run_cli("report", str(folder), "--format", "markdown")
    assert report.returncode == 0 and "dtype_policy=mixed_bfloat16" in report.stdout


def test_a_combination_torch_cannot_honour_is_skipped_with_why(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'variants = ["two-dense"]\nbackends = ["torch"]\n[grid]\nsteps_per_execution = [1, 2]\n'
    )
    out = run_cli("run", "--suite", str(path), *TINY, "--results-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr[-3000:]
    by_steps = {r.settings.steps_per_execution: r for r in only_run(tmp_path / "runs").records}
    assert by_steps[1].status == "ok" and by_steps[1].knobs["jit_compile"] is False
    assert by_steps[2].status == "skipped" and by_steps[2].test_accuracy is None
    assert "steps_per_execution=2 on torch (cpu)" in by_steps[2].error
    assert "must be 1" in by_steps[2].error


def test_python_api_and_run_file_schema_know_the_knobs(tmp_path):
    import mnist_bench
    from mnist_bench.runfile import schema

    with pytest.raises(mnist_bench.Error, match=r"steps_per_execution must be an integer >= 1"):
        mnist_bench.run(variants="two-dense", steps_per_execution=0, results_dir=tmp_path)
    with pytest.raises(mnist_bench.Error, match=r"unknown dtype_policy 'float8'"):
        mnist_bench.run(variants="two-dense", dtype_policy="float8", results_dir=tmp_path)
    assert not any(tmp_path.iterdir())
    settings = schema.run_file_schema()["$defs"]["TrainSettings"]["properties"]
    assert settings["jit_compile"]["enum"] == ["auto", "true", "false"]
    assert settings["dtype_policy"]["enum"] == ["float32", "mixed_float16", "mixed_bfloat16"]
    assert settings["steps_per_execution"]["minimum"] == 1
    assert "knobs" in schema.run_file_schema()["$defs"]["Record"]["properties"]


def test_the_watchdog_gives_a_compiled_job_time_to_compile():
    from mnist_bench.core.identity import Job
    from mnist_bench.execute.launcher import COMPILE_STALL, Watchdog

    def allowance(**settings) -> float:
        job = Job("cnn-fast", "torch", "cpu", 0, TrainSettings(**settings))
        return Watchdog(job, flops_per_train_sample=10**6, train_samples=6000).allowance

    assert allowance(jit_compile="true") == allowance() + COMPILE_STALL
    assert allowance(jit_compile="false") == allowance(jit_compile="auto") == allowance()
