"""What a new user trips on: the time a run has left, a passing check's numbers, the settings
`--match-on` compares across, a throughput that includes compilation, where the notebook writes,
and what to do when `check` has nothing to match.

On the stored real runs in tests/fixtures (`report/amd-jax-torch.json`: one epoch each;
`gate/`: the committed baseline's configuration) and one tiny real run.
"""

from __future__ import annotations

import json
import subprocess

import nbformat
import pytest
from conftest import FAKE_WORKER, ROOT, make_record, run_cli
from mnist_bench.analyse.rows import COMPILED_MARK, cells, headers, notes, rows
from mnist_bench.plan import estimate

AMD = ROOT / "tests" / "fixtures" / "report" / "amd-jax-torch.json"  # one epoch per record
GATE = ROOT / "tests" / "fixtures" / "gate"
BASELINE = ROOT / "results" / "baseline"  # two epochs, the full training set
PASSING = ("check", str(GATE / "aa.json"), "--baseline", str(GATE / "baseline.json"))
ACROSS = ("--match-on", "variant,backend,device", "--allow-missing")


# ------------------------------------------------------------------------------------- ETA
def test_the_countdown_scales_the_estimates_by_the_time_finished_jobs_took():
    jobs = [make_record("two-dense", seed=s).job for s in range(3)]
    now = [100.0]
    countdown = estimate.Countdown({j.key: 10.0 for j in jobs}, clock=lambda: now[0])
    assert countdown.seconds_left() == 30.0  # nothing finished: the estimates as they are
    assert countdown.text() == "about 30s left"
    now[0] += 20.0  # the first job took twice its estimate
    countdown.finish(jobs[0])
    assert countdown.seconds_left() == pytest.approx(40.0)
    now[0] += 5.0  # the second, half: 25 s for 20 estimated
    countdown.finish(jobs[1])
    assert countdown.seconds_left() == pytest.approx(12.5)
    countdown.finish(jobs[2])
    assert countdown.text() == ""  # done: nothing to say


def test_the_live_display_shows_the_time_left():
    import io

    from mnist_bench.execute import progress
    from rich.console import Console

    records = [make_record(seed=s, test_accuracy=0.9, train_seconds=1.0) for s in range(2)]
    countdown = estimate.Countdown({r.job.key: 90.0 for r in records})
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    with progress.make(console, 2, countdown) as shown:
        assert isinstance(shown, progress.RichProgress)
        shown.on_start(records[0].job)
        console.print(shown.progress)  # the display as it stands
        assert "about 3m 00s left" in screen.getvalue()
        shown.on_record(records[0].job, records[0])
        assert countdown.text().startswith("about ")


def test_estimates_exist_for_a_configuration_never_run():
    job = make_record("no-such-history-variant", epochs=3).job
    (seconds,) = estimate.run_estimates([job], 60_000).values()
    assert seconds > estimate.STARTUP_SECONDS  # the reference cost, over 3 epochs


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (59, "59s"), (200, "3m 20s"), (7500, "2h 05m")]
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert estimate.duration(seconds) == text


def test_a_run_says_how_long_it_has_left(tmp_path):
    """The progress lines and the run's table (the fake worker: what is printed around
    training, not the training, is tested)."""
    out = run_cli(
        "run", "-b", "jax", "-v", "two-dense", "--seeds", "0,1", "--epochs", "1",
        "--train-limit", "600", "--test-limit", "300", "--no-figures",
        "--results-dir", str(tmp_path), env=FAKE_WORKER,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 2, out.stdout
    assert lines[0].startswith("[1/2]") and lines[0].endswith(" left)"), lines[0]
    assert "about " in lines[0] and "left" not in lines[1]  # the last record: nothing left
    # one epoch: the run's own table marks the throughput and says why
    assert f" {COMPILED_MARK} " in out.stdout and "includes tracing and compilation" in out.stdout


# --------------------------------------------------------------------- check: a passing table
def test_a_passing_check_prints_its_table():
    out = run_cli(*PASSING)
    assert out.returncode == 0, out.stderr
    assert "two-dense" in out.stdout and "no significant change" in out.stdout
    assert "0.9643→0.9643" in out.stdout  # the numbers, not only the verdict
    assert out.stdout.rstrip().splitlines()[-1].startswith("check passed: 9 row(s)")


def test_a_passing_check_writes_a_markdown_job_summary():
    out = run_cli(*PASSING, "--format", "markdown")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("**check passed: 9 row(s) within tolerance")
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 2 + 9  # header, rule, a line per row
    assert table[1].startswith("| --- |")
    assert all(line.count(" | ") == table[0].count(" | ") for line in table)


def test_a_failing_check_still_shows_only_its_failing_rows():
    out = run_cli("check", str(GATE / "regressed.json"), "--baseline", str(GATE / "baseline.json"))
    assert out.returncode == 1
    assert "check FAILED" in out.stdout and "check passed" not in out.stdout


# ------------------------------------------------------------------ --match-on: what differs
def test_match_on_shows_the_settings_that_differ_on_failing_rows():
    out = run_cli("check", str(AMD), "--baseline", str(BASELINE), *ACROSS, "--format", "markdown")
    assert out.returncode == 1, out.stderr  # 0.92 -> 0.70: one epoch on 2,000 images
    failing = [line for line in out.stdout.splitlines() if "| jax |" in line]
    assert failing
    for line in failing:
        assert "epochs 2 → 1" in line and "train_limit default → 2000" in line, line


def test_match_on_shows_the_settings_that_differ_on_passing_rows():
    out = run_cli(
        "check", str(AMD), "--baseline", str(BASELINE), *ACROSS,
        "--accuracy-tolerance", "0.5", "--format", "json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    both = [r for r in json.loads(out.stdout)["rows"] if r["side"] == "both"]
    assert len(both) == 4 and all("epochs 2 → 1" in r["differences"] for r in both)
    table = run_cli(
        "check", str(AMD), "--baseline", str(BASELINE), *ACROSS, "--accuracy-tolerance", "0.5"
    )
    assert table.returncode == 0 and "(epochs 2 → 1" in table.stdout


# --------------------------------------------------- one epoch: throughput with compilation
def test_one_epoch_throughput_is_marked_and_explained():
    one = make_record(epoch_seconds=[3.0], train_samples_per_second=200.0, test_accuracy=0.9)
    two = make_record(
        "cnn", epoch_seconds=[3.0, 1.0], train_samples_per_second=600.0, test_accuracy=0.9
    )
    all_rows = rows([one, two])
    column = headers(all_rows).index("train samples/s")
    assert cells(all_rows[0], all_rows)[column] == f"200 {COMPILED_MARK}"
    assert cells(all_rows[1], all_rows)[column] == "600"
    assert any("includes tracing and compilation" in n for n in notes(all_rows))
    assert not any("compilation" in n for n in notes(rows([two])))  # no mark, no legend line


def test_the_report_of_one_epoch_runs_explains_its_mark():
    for fmt in ("table", "markdown"):
        out = run_cli("report", str(AMD), "--format", fmt)
        assert out.returncode == 0, out.stderr
        assert f"{COMPILED_MARK} one epoch, none steady" in out.stdout.replace("\\*", "*")
    steady = run_cli("report", str(BASELINE))  # two epochs: steady state, no mark
    assert steady.returncode == 0 and "compilation" not in steady.stdout


# ------------------------------------------------------------------ the notebook's results
def test_the_notebook_writes_into_an_ignored_folder():
    notebook = ROOT / "examples" / "seed.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    scope: dict = {}
    exec(parameters.source, scope)  # the cell only assigns constants
    target = (notebook.parent / scope["RESULTS_DIR"]).resolve()  # the kernel runs in examples/
    assert target.is_relative_to(ROOT)
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", str(target / "a-run.json")], check=False
    )
    assert ignored.returncode == 0, f"{target} is not git-ignored"


# ------------------------------------------------------------- check: nothing to match
def test_nothing_to_match_names_the_way_out():
    out = run_cli("check", str(AMD), "--baseline", str(BASELINE))
    assert out.returncode == 2 and not out.stdout
    (line,) = out.stderr.strip().splitlines()
    assert "nothing to match" in line and "epochs 2 → 1" in line
    for way in ("run --suite suites/ci.toml", "baseline update", "--match-on"):
        assert way in line, line
