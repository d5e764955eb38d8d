"""TOML suites: validated before anything runs, expanded into the right grid."""

from __future__ import annotations

import pytest
from conftest import ROOT, run_cli
from mnist_bench.core.config import TrainSettings
from mnist_bench.core.errors import UserError
from mnist_bench.execute import runner
from mnist_bench.plan import suite


def write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_seed_suite_is_the_notebook():
    config = suite.load(ROOT / "suites" / "seed.toml")
    jobs = runner.expand_jobs(config)
    assert len(jobs) == 9
    assert {j.variant for j in jobs} == {"single-dense", "two-dense", "flatten-dense"}
    assert all(j.settings == TrainSettings(epochs=5, batch_size=32, optimizer="adam") for j in jobs)


@pytest.mark.parametrize("name", ["seed", "ci", "full", "optimizers"])
def test_shipped_suites_are_valid(name):
    assert runner.expand_jobs(suite.load(ROOT / "suites" / f"{name}.toml"))


def test_grid_expands_to_every_combination(tmp_path):
    path = write(
        tmp_path,
        'variants = ["two-dense"]\nbackends = ["jax"]\nseeds = [0, 1]\n'
        '[settings]\nepochs = 2\n[grid]\noptimizer = ["adam", "sgd"]\n'
        "learning_rate = [1e-3, 3e-3]\n",
    )
    jobs = runner.expand_jobs(suite.load(path))
    assert len(jobs) == 8
    combos = {(j.settings.optimizer, j.settings.learning_rate) for j in jobs}
    assert combos == {("adam", 1e-3), ("adam", 3e-3), ("sgd", 1e-3), ("sgd", 3e-3)}
    assert all(j.settings.epochs == 2 for j in jobs)
    assert len({j.config_key for j in jobs}) == 4  # each grid point is its own configuration


def test_command_line_overrides_suite(tmp_path):
    path = write(tmp_path, 'variants = ["two-dense"]\nbackends = ["jax"]\n[settings]\nepochs = 4\n')
    config = suite.load(path, overrides={"epochs": 1})
    assert runner.expand_jobs(config)[0].settings.epochs == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ('variants = ["two-dense", "three-dense"]\n', ":1: unknown variant 'three-dense'; valid:"),
        ("seeds = [0]\nepochz = 3\n", ":2: unknown key 'epochz'; valid: description"),
        ('seeds = "0,1"\n', ":1: seeds must be a non-empty list, each an integer >= 0"),
        ("seeds = [1, 1]\n", ":1: seeds lists 1 twice"),
        ("seeds = [-1]\n", ":1: seeds must each be an integer >= 0 and <= 4294967295 (got -1)"),
        ('[settings]\nepochs = "five"\n', ":2: epochs must be an integer >= 1"),
        ("[settings]\nlearning_rate = nan\n", ":2: learning_rate must be a finite number > 0"),
        ("[grid]\nlearning_rate = [1e-3, inf]\n", ":2: learning_rate must each be a finite"),
        ("[grid]\nepochs = [1, 1]\n", ":2: epochs lists 1 twice"),
        ("targets = [1.5]\n", ":1: targets must each be a finite number > 0 and <= 1"),
        ("record_timeout = nan\n", ":1: record_timeout must be a finite number > 0"),
        ("[settings]\nop_determinism = true\n", ":2: unknown key 'op_determinism' in [settings]"),
        (
            '[grid]\noptimizer = ["adam", "adagrad"]\n',
            ":2: unknown optimizer 'adagrad'; valid: adam",
        ),
        ('backends = ["theano"]\n', ":1: unknown backend 'theano'"),
        ("[settings]\nepochs = 2\n[grid]\nepochs = [1, 2]\n", "in both [settings] and [grid]"),
        ("variants = [\n", "not valid TOML"),
    ],
)
def test_bad_suites(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match="s.toml") as err:
        suite.load(path)
    assert message in str(err.value)


def test_bad_suite_on_the_command_line(tmp_path):
    path = write(tmp_path, 'variants = ["nope"]\n')
    for args in (("run", "--suite", str(path)), ("list", "--suite", str(path))):
        out = run_cli(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1 and "unknown variant 'nope'" in out.stderr


def test_list_suite_shows_grid_and_estimate():
    out = run_cli("list", "--suite", str(ROOT / "suites" / "optimizers.toml"), "--no-probe")
    assert out.returncode == 0, out.stderr
    assert "72 records" in out.stdout and "estimated" in out.stdout and "sgd" in out.stdout


@pytest.mark.parametrize(
    "flag, toml, message",
    [
        (("--learning-rate", "nan"), "[settings]\nlearning_rate = nan\n", "learning_rate must be"),
        (("--epochs", "0"), "[settings]\nepochs = 0\n", "epochs must be an integer >= 1"),
        (("--seeds", "1,1"), "seeds = [1, 1]\n", "seeds lists 1 twice"),
        (("--targets", "inf"), "targets = [inf]\n", "targets must each be a finite number"),
        (("--record-timeout", "nan"), "record_timeout = nan\n", "record_timeout must be"),
        (("--threads", "0"), "threads = 0\n", "threads must be an integer >= 1"),
    ],
)
def test_flag_and_suite_give_the_same_message(tmp_path, flag, toml, message):
    """One set of checks: the flag and the suite key fail with the same words (the suite adds
    its file and line), exit 2, before any worker starts."""
    path = write(tmp_path, 'variants = ["two-dense"]\n' + toml)
    by_flag = run_cli("run", *flag, "--results-dir", str(tmp_path / "runs"))
    by_suite = run_cli("run", "--suite", str(path), "--results-dir", str(tmp_path / "runs"))
    for out in (by_flag, by_suite):
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1 and message in out.stderr
    flag_text = by_flag.stderr.split("error: ", 1)[1]
    suite_text = by_suite.stderr.split("error: ", 1)[1]
    assert suite_text.startswith(f"{path}:") and suite_text.endswith(flag_text)
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_the_time_estimate_learns_from_trusted_timings_first():
    """The committed CI baseline has three PyTorch two-dense records: two ran beside a busy
    neighbour (contended, 92 and 140 s an epoch), one did not (14 s). The estimate takes the
    one whose timing is trusted, not the median of the three."""
    from mnist_bench.plan import estimate
    from mnist_bench.runfile.records import load_run

    folder = ROOT / "results" / "baseline"
    records = [r for r in load_run(folder / "ci.json").records if r.variant == "two-dense"]
    torch = [r for r in records if r.backend == "torch"]
    assert sorted(r.contended for r in torch) == [False, True, True]  # the premise
    [quiet] = [r for r in torch if not r.contended]
    learnt = estimate.history([folder], warn=lambda message: None)
    assert learnt[("two-dense", "torch", 32)] == 1.0 / quiet.train_samples_per_second
    # Where every record is contended (TensorFlow here), all of them still count.
    tf = sorted(1.0 / r.train_samples_per_second for r in records if r.backend == "tensorflow")
    assert all(r.contended for r in records if r.backend == "tensorflow")
    assert learnt[("two-dense", "tensorflow", 32)] == tf[1]


def test_a_grid_of_days_is_estimated_in_days():
    from mnist_bench.execute.inventory import _duration

    assert [_duration(s) for s in (59, 3 * 3600 + 60, 100 * 3600)] == ["0m59s", "3h01m", "4.2 days"]
    assert _duration(float("nan")) == _duration(float("inf")) == "?"
