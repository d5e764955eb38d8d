"""The command line: exit codes, one-line errors, and no framework on the fast paths."""

from __future__ import annotations

import pytest
from conftest import BACKEND, FRAMEWORKS, cli_importing_none_of, run_cli


def test_help_imports_no_framework():
    out = cli_importing_none_of(FRAMEWORKS, "--help")
    assert "run" in out.stdout and "compare" in out.stdout


def test_run_help_teaches():
    out = run_cli("run", "--help")
    assert out.returncode == 0
    for option in (
        "--variant",
        "--backend",
        "--seeds",
        "--epochs",
        "--batch-size",
        "--data",
        "--train-limit",
        "--test-limit",
        "--results-dir",
        "--device",
        "--resume",
    ):
        assert option in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "--variant", "nope"), "unknown variant 'nope'; valid: single-dense"),
        (("run", "--backend", "theano"), "unknown backend 'theano'; valid: tensorflow, jax, torch"),
        (("run", "--data", "/no/such.npz"), "no such file"),
        (("run", "--epochs", "0"), "epochs must be an integer >= 1 and <= 10000 (got 0)"),
        (("run", "--learning-rate", "nan"), "learning_rate must be a finite number > 0"),
        (("run", "--seeds", "1,1"), "seeds lists 1 twice"),
        (("run", "--seeds", "-1"), "seeds must each be an integer >= 0"),
        (("run", "--seeds", "a,b"), "invalid int_list value"),
        (("run", "--device", "tpu"), "invalid choice"),
        (("run", "--resume", "/no/such/run.json"), "no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    where = () if "--resume" in args else ("--results-dir", str(tmp_path))
    out = run_cli(*args, *where)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()), "bad input must not create a run file"


def test_corrupt_data_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"PK\x03\x04 garbage")
    out = run_cli("run", "--data", str(bad), "--results-dir", str(tmp_path / "r"))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("mnist-bench run: error: ")
    assert str(bad) in out.stderr and "Traceback" not in out.stderr


def test_results_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_cli("run", "-b", BACKEND, "--results-dir", str(blocker / "runs"))
    assert out.returncode == 2
    assert "cannot create results folder" in out.stderr and "Traceback" not in out.stderr


def test_list_without_probe():
    out = run_cli("list", "--no-probe")
    assert out.returncode == 0
    for name in ("single-dense", "two-dense", "flatten-dense", "tensorflow", "jax", "torch"):
        assert name in out.stdout


def test_env_json():
    import json

    out = run_cli("env", "--json")
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["cpu"]["logical_cores"] >= 1 and env["peak_gflops"] > 0
    assert len(env["machine_id"]) == 12
