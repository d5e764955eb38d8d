"""`mnist-bench history` and its step detection, on run files derived from a real one.

Each commit's run file is the published cnn-fast run (5 seeds, 3 epochs, TensorFlow) with its
provenance changed (run id, start time, git commit) and its accuracy and epoch times moved by a
small seeded jitter, plus the step a test injects.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import FRAMEWORKS, ROOT, cli_importing_none_of, run_cli, undocumented_json_keys
from mnist_bench import cli
from mnist_bench.analyse import changepoints, history
from scipy import stats

SOURCE = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "cnn-fast-5-seeds.json"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def sha(i: int) -> str:
    return hashlib.sha1(f"commit {i}".encode()).hexdigest()


def write_run(
    folder: Path,
    i: int,
    *,
    accuracy_step: float = 0.0,
    time_factor: float = 1.0,
    name: str | None = None,
    commit: str | None = None,
    started: datetime | None = None,
    jitter_seed: int | None = None,
) -> Path:
    """Commit `i`'s run file: the real run with new provenance, jitter and an optional step."""
    run = json.loads(SOURCE.read_text())
    rng = random.Random(i if jitter_seed is None else jitter_seed)
    when = started or START + timedelta(hours=i)
    run["run_id"] = when.strftime("%Y%m%dT%H%M%SZ") + f"-{i:06x}"
    run["started_utc"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    run["environment"]["git"] = {"commit": commit or sha(i), "dirty": False}
    time_jitter = rng.gauss(0, 0.01)  # the run's machine state: every record alike
    for record in run["records"]:
        record["test_accuracy"] = round(
            record["test_accuracy"] + rng.gauss(0, 0.0004) + accuracy_step, 6
        )
        scale = time_factor * (1 + time_jitter + rng.gauss(0, 0.005))
        record["epoch_seconds"] = [s * scale for s in record["epoch_seconds"]]
        for key in ("first_epoch_seconds", "steady_epoch_seconds", "train_seconds"):
            record[key] *= scale
        record["train_samples_per_second"] /= scale
    path = folder / (name or f"run-{i:02d}.json")
    path.write_text(json.dumps(run, indent=1))
    return path


def write_series(folder: Path, commits: int = 12, **steps) -> Path:
    """`commits` run files; `accuracy_at=(k, size)` / `time_at=(k, factor)` step from commit k."""
    folder.mkdir(exist_ok=True)
    acc_at, acc = steps.get("accuracy_at", (commits, 0.0))
    time_at, factor = steps.get("time_at", (commits, 1.0))
    for i in range(commits):
        write_run(
            folder,
            i,
            accuracy_step=acc if i >= acc_at else 0.0,
            time_factor=factor if i >= time_at else 1.0,
        )
    return folder


def trend(h: history.History, metric: str) -> history.Trend:
    (series,) = h.series
    return next(t for t in series.trends if t.metric.name == metric)


# ------------------------------------------------------------------------------ detection
def test_an_injected_accuracy_step_names_its_commit(tmp_path):
    h = history.build([write_series(tmp_path / "runs", accuracy_at=(8, -0.005))])
    acc = trend(h, "test_accuracy")
    assert [p.commit.sha for p in acc.points] == [sha(i) for i in range(12)]
    assert [len(p.values) for p in acc.points] == [5] * 12  # a mean over the 5 seeds each
    (step,) = acc.steps
    assert acc.commit_of(step).sha == sha(8)
    assert acc.worse(step)
    assert step.size == pytest.approx(-0.005, abs=0.0006)
    assert step.p_value < 0.001
    assert trend(h, "steady_epoch_seconds").steps == []  # time did not move


def test_a_time_step_is_found_on_the_log_scale(tmp_path):
    h = history.build([write_series(tmp_path / "runs", time_at=(6, 1.10))])
    steady = trend(h, "steady_epoch_seconds")
    (step,) = steady.steps
    assert steady.commit_of(step).sha == sha(6)
    assert steady.worse(step)
    assert step.relative == pytest.approx(0.10, abs=0.02)
    assert trend(h, "test_accuracy").steps == []


def test_a_flat_series_stays_silent(tmp_path, capsys):
    runs = write_series(tmp_path / "runs", commits=15)
    h = history.build([runs])
    assert h.steps() == []
    assert cli.main(["history", str(runs), "--fail-on-step", "--recent", "0"]) == 0
    out = capsys.readouterr().out
    assert "none" in out and "worse" not in out


# ------------------------------------------------------------------------------ --fail-on-step
def test_fail_on_step_exit_codes(tmp_path, capsys):
    newest = write_series(tmp_path / "newest", accuracy_at=(11, -0.005))  # the last commit
    assert cli.main(["history", str(newest), "--fail-on-step"]) == 1
    err = capsys.readouterr().err
    assert f"worse step at {sha(11)[:7]}" in err and "-0.50 pt" in err
    assert cli.main(["history", str(newest)]) == 0  # reported, not failed, without the flag

    old = write_series(tmp_path / "old", accuracy_at=(3, -0.005))
    assert cli.main(["history", str(old), "--fail-on-step"]) == 0  # 9 commits ago: not recent
    assert cli.main(["history", str(old), "--fail-on-step", "--recent", "9"]) == 1
    assert cli.main(["history", str(old), "--fail-on-step", "--recent", "0"]) == 1

    better = write_series(tmp_path / "better", accuracy_at=(10, +0.005), time_at=(10, 0.9))
    assert cli.main(["history", str(better), "--fail-on-step"]) == 0
    capsys.readouterr()
    h = history.build([better])
    assert len(h.steps()) == 2 and h.failing(0) == []

    slower = write_series(tmp_path / "slower", time_at=(9, 1.10))
    assert cli.main(["history", str(slower), "--fail-on-step"]) == 1
    assert "steady epoch s" in capsys.readouterr().err


def test_exit_codes_as_a_process(tmp_path):
    runs = write_series(tmp_path / "runs", accuracy_at=(11, -0.005))
    failed = run_cli("history", str(runs), "--fail-on-step", "--format", "markdown")
    assert failed.returncode == 1, failed.stderr
    assert "worse" in failed.stdout and "Traceback" not in failed.stderr


# ------------------------------------------------------------------------------ ordering
def test_commits_are_ordered_by_run_time_not_by_file_name(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    order = [4, 0, 3, 1, 2]  # file a.json holds the newest commit, e.json the oldest...
    for name, i in zip("abcde", order, strict=True):
        write_run(folder, i, name=f"{name}.json")
    h = history.build([folder])
    assert [c.sha for c in h.commits] == [sha(i) for i in range(5)]
    assert [c.started for c in h.commits] == sorted(c.started for c in h.commits)


def test_runs_at_one_commit_are_pooled_and_dirty_trees_kept_apart(tmp_path):
    folder = write_series(tmp_path / "runs", commits=4)
    # The same commit run again later: its seeds are repeats, averaged into one value each.
    write_run(folder, 9, commit=sha(2), started=START + timedelta(hours=10), name="again.json")
    h = history.build([folder])
    assert len(h.commits) == 4
    again = h.commits[2]
    assert again.sha == sha(2) and len(again.run_ids) == 2
    assert again.started == START + timedelta(hours=2)  # its first run places it
    point = trend(h, "test_accuracy").points[2]
    assert len(point.values) == 5

    dirty = json.loads((folder / "again.json").read_text())
    dirty["run_id"] += "-dirty"
    dirty["environment"]["git"]["dirty"] = True
    (folder / "dirty.json").write_text(json.dumps(dirty))
    labels = [c.label for c in history.build([folder]).commits]
    assert labels.count(sha(2)[:7]) == 1 and labels.count(sha(2)[:7] + "+dirty") == 1


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    runs = write_series(tmp_path / "runs", commits=4)
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 2, "run_id": ')
    late = json.loads((runs / "run-00.json").read_text())
    late["run_id"], late["started_utc"] = "odd", "yesterday"
    odd = tmp_path / "odd" / "odd.json"
    odd.parent.mkdir()
    odd.write_text(json.dumps(late))
    cases = [
        ([str(tmp_path / "missing")], "no such file or folder"),
        ([str(runs), str(bad)], "malformed JSON"),
        ([str(runs), str(odd)], "is not an ISO 8601 time"),
        ([str(runs), "--alpha", "1.5"], "--alpha 1.5 is not between 0 and 1"),
        ([str(runs), "--recent", "-1"], "--recent -1 is negative"),
        ([str(runs), "--plot", str(tmp_path / "p.svg")], "name a .png file"),
        ([str(runs), "-o", str(runs / "run-01.json")], "is one of the run files read"),
        ([str(runs), "-o", str(tmp_path)], "is a folder"),
    ]
    for args, message in cases:
        assert cli.main(["history", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert json.loads((runs / "run-01.json").read_text())["run_id"]  # not overwritten
    assert cli.main(["history", str(runs), str(bad), str(odd), "--skip-bad"]) == 0
    assert capsys.readouterr().err.count("warning: skipped") == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["history", str(runs), "--recent", "two"])
    assert exc.value.code == 2


# ------------------------------------------------------------------------------ formats
def test_markdown_lists_trends_and_steps(tmp_path, capsys):
    runs = write_series(tmp_path / "runs", accuracy_at=(7, -0.005))
    assert cli.main(["history", str(runs), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "| configuration | backend | device | machine | metric | commits |" in out
    trend_line = next(line for line in lines if "| test accuracy |" in line and "cnn-fast" in line)
    assert f"{sha(7)[:7]} -0.50 pt" in trend_line or f"{sha(7)[:7]} -0.4" in trend_line
    assert "| 12 |" in trend_line
    assert any(c in trend_line for c in history.SPARK)
    step_line = next(line for line in lines if line.startswith(f"| {sha(7)[:7]} |"))
    assert step_line.rstrip().endswith("| worse |")


def test_html_page_and_plot(tmp_path):
    runs = write_series(tmp_path / "runs", accuracy_at=(7, -0.005))
    page, png = tmp_path / "history.html", tmp_path / "history.png"
    assert (
        cli.main(["history", str(runs), "--format", "html", "-o", str(page), "--plot", str(png)])
        == 0
    )
    text = page.read_text()
    assert text.startswith("<!doctype html>") and text.count("<img") == 1
    assert sha(7)[:7] in text and "Commits, oldest first" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ --format json
TOP = {"command", "runs", "files", "alpha", "warnings", "commits", "series", "fail_on_step"}
COMMIT = {"commit", "label", "dirty", "time", "run_ids"}
SERIES = {
    "label", "variant", "backend", "device", "dataset", "machine", "configuration", "tested",
    "points", "steps",
}  # fmt: skip
POINT = {"commit", "label", "time", "values", *(m.name for m in history.TRACKED)}
STEP = {
    "commit", "label", "time", "metric", "before", "after", "size", "relative", "p_value",
    "direction",
}  # fmt: skip
FAIL = {"recent", "failed", "reason", "steps"}


def history_json(capsys, *args: str) -> tuple[int, dict]:
    code = cli.main(["history", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)  # stdout is the object, nothing else


def test_json_names_the_injected_step_and_the_numbers_build_computes(tmp_path, capsys):
    runs = write_series(tmp_path / "runs", accuracy_at=(11, -0.005))
    code, data = history_json(capsys, str(runs), "--fail-on-step")
    assert code == 1  # the exit code of the other formats
    assert set(data) == TOP and data["command"] == "history"
    assert data["runs"] == [str(runs)] and len(data["files"]) == 12
    assert data["alpha"] == history.DEFAULT_ALPHA and data["warnings"] == []
    assert [c["commit"] for c in data["commits"]] == [sha(i) for i in range(12)]
    assert all(set(c) == COMMIT for c in data["commits"])
    assert data["commits"][0]["time"] == "2026-12-01T09:00:00Z"
    assert data["commits"][3]["label"] == sha(3)[:7] and data["commits"][3]["dirty"] is False

    (series,) = data["series"]
    assert set(series) == SERIES
    assert (series["variant"], series["backend"], series["device"]) == (
        "cnn-fast",
        "tensorflow",
        "cpu",
    )
    assert series["configuration"]["epochs"] == 3 and "seed" not in series["configuration"]
    assert series["tested"] == {"test_accuracy": True, "steady_epoch_seconds": True}
    h = history.build([runs])
    assert series["machine"] == h.series[0].machine
    points = series["points"]
    assert [p["commit"] for p in points] == [sha(i) for i in range(12)]
    for metric in ("test_accuracy", "steady_epoch_seconds"):
        built = trend(h, metric).points
        assert [p["values"][metric] for p in points] == [b.values for b in built]
        assert [p[metric] for p in points] == pytest.approx([b.mean for b in built])
        assert points[0][metric] == pytest.approx(np.mean(points[0]["values"][metric]))
    assert all(set(p) == POINT and len(p["values"]["test_accuracy"]) == 5 for p in points)

    (step,) = series["steps"]
    assert set(step) == STEP
    (built,) = trend(h, "test_accuracy").steps
    assert step["commit"] == sha(11) and step["label"] == sha(11)[:7]
    assert step["metric"] == "test_accuracy" and step["direction"] == "worse"
    assert step["size"] == pytest.approx(-0.005, abs=0.0006)
    assert step["size"] == pytest.approx(built.size) and step["p_value"] == built.p_value
    assert step["before"] == pytest.approx(np.mean([p["test_accuracy"] for p in points[:11]]))
    assert step["after"] == pytest.approx(points[11]["test_accuracy"])

    fail = data["fail_on_step"]
    assert set(fail) == FAIL and fail["recent"] == history.DEFAULT_RECENT
    assert fail["failed"] is True and fail["reason"] == "1 worse step(s) at the latest 5 commit(s)"
    (failing,) = fail["steps"]
    assert {k: failing[k] for k in STEP} == step
    assert failing["series"]["variant"] == "cnn-fast" and failing["series"]["label"] == "cnn-fast"

    # the step is 9 commits old: reported, not failed; without the flag, no verdict at all
    code, data = history_json(capsys, str(runs), "--fail-on-step", "--recent", "0")
    assert code == 1 and data["fail_on_step"]["reason"].endswith("at any commit")
    old = write_series(tmp_path / "old", accuracy_at=(3, -0.005))
    code, data = history_json(capsys, str(old), "--fail-on-step")
    assert code == 0 and data["fail_on_step"]["failed"] is False
    assert data["fail_on_step"]["reason"] is None and data["fail_on_step"]["steps"] == []
    assert data["series"][0]["steps"][0]["commit"] == sha(3)
    code, data = history_json(capsys, str(runs))
    assert code == 0 and data["fail_on_step"] is None


def test_json_as_a_process_and_to_a_file(tmp_path):
    runs = write_series(tmp_path / "runs", time_at=(10, 1.10))
    out = run_cli("history", str(runs), "--format", "json", "--fail-on-step")
    assert out.returncode == 1, out.stderr
    assert "worse step at" in out.stderr and "Traceback" not in out.stderr
    data = json.loads(out.stdout)
    (step,) = data["series"][0]["steps"]
    assert (step["commit"], step["metric"]) == (sha(10), "steady_epoch_seconds")
    assert step["relative"] == pytest.approx(0.10, abs=0.02)

    target = tmp_path / "history.json"
    written = run_cli("history", str(runs), "--format", "json", "--fail-on-step", "-o", str(target))
    assert written.returncode == 1 and written.stdout == ""
    assert json.loads(target.read_text()) == data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_json_nulls_warnings_and_untested_series(tmp_path, capsys):
    folder = write_series(tmp_path / "runs", commits=2)
    noisy = json.loads((folder / "run-01.json").read_text())
    for record in noisy["records"]:
        record["contended"] = True  # its timings are left out: no steady epoch at that commit
    (folder / "run-01.json").write_text(json.dumps(noisy))
    (folder / "broken.json").write_text("{not json")
    code, data = history_json(capsys, str(folder), "--skip-bad", "--fail-on-step")
    assert code == 0
    assert any("broken.json" in w for w in data["warnings"])
    assert any("nothing was tested" in w for w in data["warnings"])
    (series,) = data["series"]
    assert series["tested"] == {"test_accuracy": False, "steady_epoch_seconds": False}
    assert series["steps"] == [] and data["fail_on_step"]["failed"] is False
    first, second = series["points"]
    assert first["steady_epoch_seconds"] > 0 and len(first["values"]["steady_epoch_seconds"]) == 5
    assert second["steady_epoch_seconds"] is None and second["values"]["steady_epoch_seconds"] == []
    assert second["test_accuracy"] == pytest.approx(np.mean(second["values"]["test_accuracy"]))


def test_json_numbers_that_are_not_finite_become_null():
    from mnist_bench.core import jsonout

    data = {"a": float("nan"), "b": [1.0, float("inf"), {"c": -float("inf")}], "d": (2, "x")}
    assert jsonout.finite(data) == {"a": None, "b": [1.0, None, {"c": None}], "d": [2, "x"]}
    assert json.loads(jsonout.dumps(data))["b"] == [1.0, None, {"c": None}]


def test_help_documents_every_json_key():
    keys = TOP | COMMIT | SERIES | POINT | STEP | FAIL | {"series", "history"}
    missing = undocumented_json_keys("history", keys)
    assert not missing, missing


def test_table_markdown_and_json_import_no_framework_or_matplotlib(tmp_path):
    runs = write_series(tmp_path / "runs", commits=4)
    done = run_cli("--version")  # the console script works at all
    assert done.returncode == 0
    # json draws no table either: rich stays out too
    for fmt, banned in (("markdown", ()), ("json", ("rich",))):
        cli_importing_none_of(
            (*FRAMEWORKS, "matplotlib", *banned), "history", str(runs), "--format", fmt
        )


# ------------------------------------------------------------------------------ changepoints
def test_split_statistics_by_hand_and_against_scipy():
    values = [1.0, 2.0, 3.0, 10.0, 11.0, 12.0]
    t = changepoints.split_statistics(np.array([values]))[0]
    # split after 3: means 2 and 11, within sums of squares 2 + 2, variance 4 / 4 = 1
    assert t[2] == pytest.approx(9 / np.sqrt(1 / 3 + 1 / 3))
    for c in range(1, 6):
        left, right = values[:c], values[c:]
        if len(left) + len(right) > 2:
            expected = stats.ttest_ind(right, left, equal_var=True).statistic
            assert t[c - 1] == pytest.approx(expected)


def test_constant_sides_are_certain_and_a_constant_series_is_silent():
    assert changepoints.detect([0.9744] * 10) == []
    (step,) = changepoints.detect([0.9744] * 9 + [0.9694])  # deterministic runs: any change
    assert step.index == 9 and step.size == pytest.approx(-0.005) and step.p_value < 0.001
    # Shuffles cannot put a one-value step at the end below 2/n: normal calibration can.
    shuffled = changepoints.best_split([0.9744] * 5 + [0.9694], calibration="permutation")
    assert shuffled[2] == pytest.approx(2 / 6)  # every order of 6 tried


def test_false_alarms_hold_the_level_on_normal_noise():
    rng = np.random.default_rng(7)
    alarms = sum(bool(changepoints.detect(list(rng.normal(0, 1, 15)))) for _ in range(600))
    assert 0.02 <= alarms / 600 <= 0.09  # alpha 0.05


def test_two_steps_are_both_found_with_their_levels():
    rng = np.random.default_rng(3)
    values = list(
        np.r_[np.full(10, 1.0), np.full(10, 1.2), np.full(10, 1.1)] + rng.normal(0, 0.01, 30)
    )
    steps = changepoints.detect(values, log=True)
    assert [s.index for s in steps] == [10, 20]
    assert steps[0].before == pytest.approx(1.0, abs=0.01)
    assert steps[0].after == pytest.approx(1.2, abs=0.01)
    assert steps[1].relative == pytest.approx(-1 / 12, abs=0.01)
    assert changepoints.detect(values, log=True) == steps  # the same answer every time


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="at least 3"):
        changepoints.best_split([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        changepoints.detect([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="positive"):
        changepoints.detect([1.0, 0.0, 2.0], log=True)
    with pytest.raises(ValueError, match="alpha"):
        changepoints.detect([1.0, 2.0, 3.0], alpha=0)


def test_sparkline():
    assert history.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert history.sparkline([2.0, 2.0]) == "▄▄"
    assert history.sparkline(list(range(50)), width=10).startswith("…")
