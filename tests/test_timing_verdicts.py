"""benchmarks/timing_verdicts.py: its pairings judge A vs A and A vs slowed runs as compare and
check do (on made-up records here; the script itself trains)."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys

import pytest
from conftest import ROOT, benchmark, make_record

SOURCE = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "cnn-fast-5-seeds.json"


tv = benchmark("timing_verdicts")


def _runs(noise: float, slowdowns=(0.05, 0.20), n: int = 8, **flags):
    """Records whose windows say 1,000 samples/s (x 1 + noise) and whose epochs say the same,
    slowed by each fraction."""
    rng = random.Random(0)
    runs = {}
    for slowdown in (0.0, *slowdowns):
        runs[slowdown] = []
        for i in range(n):
            rate = 1000 * (1 + rng.gauss(0, noise)) / (1 + slowdown)
            record = make_record(
                seed=i,
                epochs=3,
                train_samples=1000,
                test_accuracy=0.9,
                train_samples_per_second=rate,
                infer_samples_per_second=5000.0,
                epoch_seconds=[5.0, 1000 / rate, 1000 / rate],
                **flags,
            )
            runs[slowdown].append(record)
    return runs


def _args(**kw) -> argparse.Namespace:
    defaults = dict(
        per_side=1, pairings=50, resample_seed=0, time_tolerance=0.10, max_slowdown=0.03,
        slowdowns=[0.05, 0.20], ignore_flags=False, shifts=[],
    )  # fmt: skip
    return argparse.Namespace(**{**defaults, **kw})


def test_quiet_runs_never_cry_wolf_and_catch_a_big_slowdown():
    table = tv.pairings(_runs(0.002), _args())
    for figure in tv.FIGURES:
        aa, small, big = (table[figure][k] for k in ("A vs A", "A vs +5%", "A vs +20%"))
        assert aa["worse"] == aa["changed"] == aa["gate"] == aa["skipped"] == 0
        # -17% throughput: past compare's 10% and check's 3%; -4.8%: past check's only
        assert big["worse"] == big["gate"] == 1.0
        assert small["worse"] == 0 and small["gate"] == 1.0


def test_welch_with_several_runs_a_side_sees_the_small_slowdown():
    table = tv.pairings(_runs(0.002), _args(per_side=3))
    assert table["windows"]["A vs +5%"]["worse"] == 1.0
    assert table["windows"]["A vs A"]["worse"] <= 0.1


def test_noisy_runs_raise_false_alarms_at_the_gate():
    table = tv.pairings(_runs(0.05), _args())
    assert table["windows"]["A vs A"]["gate"] > 0.1


def test_flagged_records_are_skipped_not_judged():
    table = tv.pairings(_runs(0.002, unstable=True), _args())
    assert table["windows"]["A vs +20%"]["skipped"] == 1.0
    assert table["windows"]["A vs +20%"]["gate"] == 0
    table = tv.pairings(_runs(0.002, unstable=True, contended=True), _args(ignore_flags=True))
    assert table["windows"]["A vs +20%"]["skipped"] == 0
    assert table["windows"]["A vs +20%"]["gate"] == 1.0


def test_the_epoch_figure_comes_from_the_epochs():
    record = make_record(train_samples=600, train_samples_per_second=1.0, epoch_seconds=[9, 2, 4])
    view = tv.as_figure(record, "epochs")
    assert view.train_samples_per_second == pytest.approx(600 * 2 / 6)
    assert view.test_accuracy == 1.0 and view.infer_samples_per_second is None
    assert tv.as_figure(record, "windows").train_samples_per_second == 1.0


def test_bad_options_are_one_line():
    script = str(ROOT / "benchmarks" / "timing_verdicts.py")
    for bad in (
        ["--runs", "1"],
        ["--slowdowns", "x"],
        ["--slowdowns", "-0.1"],
        ["--shifts", "ten"],
        ["--shifts", "0"],
    ):
        done = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad


def test_calibration_finds_the_limit_that_keeps_false_alarms_and_its_power():
    runs = _runs(0.02, slowdowns=(0.05, 0.10, 0.20), n=10)
    args = _args(pairings=200, slowdowns=[0.05, 0.10, 0.20], calibrate=[1, 3], false_alarms=0.01)
    rows = {(c["figure"], c["per_side"]): c for c in tv.calibrate(runs, args)}
    one, three = rows[("windows", 1)], rows[("windows", 3)]
    for c in (one, three):
        assert c["limit"] is not None and c["false_alarms"] <= 0.01
        assert c["skipped"] == 0
        assert c["power"]["+20%"] == 1.0
    # 2% noise a run: one run a side differs by about 2.8% (sd), so the 1% tail sits near 6.6%
    assert 0.04 <= one["limit"] <= 0.10
    # three runs a side average the noise: a tighter limit, more power at +5%
    assert three["limit"] < one["limit"]
    assert three["power"]["+5%"] >= one["power"]["+5%"]


def test_flagged_records_calibrate_nothing():
    # every A/A pairing without a verdict: no limit to speak of, and no power
    runs = _runs(0.002, slowdowns=(0.10,), n=6, unstable=True)
    args = _args(slowdowns=[0.10], calibrate=[1], false_alarms=0.01)
    (windows, _epochs) = tv.calibrate(runs, args)
    assert windows["skipped"] == 1.0
    assert windows["limit"] is None and windows["power"]["+10%"] is None


def test_some_flagged_records_still_calibrate_on_the_rest():
    runs = _runs(0.02, slowdowns=(0.20,), n=8)
    runs[tv.BASE][0] = _runs(0.0, slowdowns=(), n=1, unstable=True)[tv.BASE][0]
    args = _args(slowdowns=[0.20], calibrate=[1], false_alarms=0.01, pairings=200)
    (windows, _epochs) = tv.calibrate(runs, args)
    assert 0 < windows["skipped"] < 1 and windows["limit"] is not None
    assert windows["power"]["+20%"] > 0.5


def test_kept_runs_are_read_not_trained_again(tmp_path):
    # a folder as --runs-dir keeps it, holding a run of one record: read back, nothing trained
    run = json.loads(SOURCE.read_text())
    run["records"] = run["records"][:1]
    run["records"][0]["train_samples_per_second"] = 1234.0
    folder = tmp_path / "0.1-3"
    folder.mkdir()
    (folder / "kept.json").write_text(json.dumps(run))
    args = _args(variant="two-dense", backend="jax", device="cpu", epochs=3)
    kept = tv.run_once(args, 3, 0.1, folder)
    assert kept.train_samples_per_second == 1234.0
    assert kept.variant == run["records"][0]["job"]["variant"]


def test_a_broken_kept_run_is_one_line_naming_its_folder(tmp_path):
    folder = tmp_path / "0.1-3"
    folder.mkdir()
    (folder / "kept.json").write_text('{"records": [')
    args = _args(variant="two-dense", backend="jax", device="cpu", epochs=3)
    with pytest.raises(SystemExit) as stop:
        tv.run_once(args, 3, 0.1, folder)
    message = str(stop.value)
    assert str(folder) in message and "remove that folder" in message
    assert "\n" not in message


def test_bad_calibration_options_are_one_line():
    script = str(ROOT / "benchmarks" / "timing_verdicts.py")
    for bad in (["--calibrate", "x"], ["--calibrate", "6"], ["--false-alarms", "2"]):
        done = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad


def test_a_second_call_judges_the_kept_runs_and_writes_its_json(tmp_path, capsys):
    # the runs a first call kept (--runs-dir): 2 a side, A and +10%; nothing is trained
    source = json.loads(SOURCE.read_text())
    for slowdown, rate in ((0.0, 1000.0), (0.1, 900.0)):
        for i in range(2):
            run = json.loads(json.dumps(source))
            run["run_id"] = f"{run['run_id']}-{slowdown}-{i}"
            run["records"] = run["records"][:1]
            record = run["records"][0]
            record["train_samples_per_second"] = rate + i
            record["steady_seconds_per_1k"] = 1000 / (rate + i)
            record["contended"] = record["unstable"] = False
            folder = tmp_path / "runs" / f"{slowdown}-{i}"
            folder.mkdir(parents=True)
            (folder / "run.json").write_text(json.dumps(run))
    out = tmp_path / "out.json"
    argv = ["--runs", "2", "--slowdowns", "0.1", "--calibrate", "1", "--pairings", "20"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--json", str(out)]
    assert tv.main(argv) == 0
    text = capsys.readouterr().out
    assert "check --max-slowdown calibrated" in text and "realized slowdown" in text
    data = json.loads(out.read_text())
    assert data["settings"]["runs_dir"] == str(tmp_path / "runs")
    slowed, base = (statistics.median([1000 / r, 1000 / (r + 1)]) for r in (900, 1000))
    assert data["realized_slowdown"]["+10%"] == pytest.approx(slowed / base - 1)
    (windows,) = [c for c in data["calibrated"] if c["figure"] == "windows"]
    assert windows["per_side"] == 1 and windows["false_alarms"] <= 0.01


def test_runs_needed_follow_the_normal_approximation():
    # 2% spread, a 10% slowdown (throughput -9.1%): 2 (3.61 x 0.02 / 0.0909)^2 = 1.26 -> 2 a side
    assert tv.repeats_needed(0.02, 0.10) == 2
    # four times the spread takes sixteen times the runs (rounded up)
    assert tv.repeats_needed(0.08, 0.10) == 21
    # a larger slowdown, fewer runs; a stricter false-alarm rate, more
    assert tv.repeats_needed(0.08, 0.20) < tv.repeats_needed(0.08, 0.10)
    assert tv.repeats_needed(0.05, 0.10, false_alarms=0.001) > tv.repeats_needed(0.05, 0.10)
    assert tv.repeats_needed(0.0, 0.10) == 1


def test_process_cv_leaves_flagged_runs_out():
    runs = _runs(0.02, slowdowns=(), n=6)[tv.BASE]
    rates = [r.train_samples_per_second for r in runs]
    expected = statistics.stdev(rates) / statistics.fmean(rates)
    assert tv.process_cv(runs, "windows") == pytest.approx(expected)
    flagged = [*runs, _runs(0.0, slowdowns=(), n=1, unstable=True)[tv.BASE][0]]
    assert tv.process_cv(flagged, "windows") == pytest.approx(expected)


def test_a_shifted_run_is_an_a_run_exactly_that_much_slower():
    record = make_record(
        train_samples=600,
        train_samples_per_second=300.0,
        train_seconds=6.0,
        epoch_seconds=[3.0, 1.0, 2.0],
        window_seconds=[0.5, 0.25],
        unstable=True,
    )
    slow = tv.shifted(record, 0.10)
    assert slow.train_samples_per_second == pytest.approx(300 / 1.1)
    assert slow.train_seconds == pytest.approx(6.6)
    assert slow.epoch_seconds == pytest.approx([3.3, 1.1, 2.2])
    assert slow.window_seconds == pytest.approx([0.55, 0.275])
    assert slow.unstable and record.epoch_seconds == [3.0, 1.0, 2.0]  # flags kept, A untouched
    assert tv.side_name(("shift", 0.1)) == "A+10%" and tv.side_name(0.1) == "+10%"
    assert tv.side_name(tv.BASE) == "A"


def test_shifted_pairings_catch_what_they_should_and_no_more():
    """A vs other A runs made 20% / 1% slower by arithmetic: quiet runs catch the 20% every
    time (as the injected +20% is caught), and a 1% shift stays under check's 3% limit."""
    args = _args(shifts=[0.01, 0.20])
    table = tv.pairings(_runs(0.002), args)
    for figure in tv.FIGURES:
        big, tiny = table[figure]["A vs A+20%"], table[figure]["A vs A+1%"]
        assert big["worse"] == big["gate"] == 1.0 and big["skipped"] == 0
        assert tiny["gate"] == 0 and tiny["worse"] == 0
    noisy = tv.pairings(_runs(0.05), _args(shifts=[0.05], per_side=3))
    assert 0 < noisy["windows"]["A vs A+5%"]["worse"] < 1  # the A runs' own spread carried


def test_calibration_reports_power_at_the_shifts():
    runs = _runs(0.02, slowdowns=(0.10,), n=10)
    args = _args(pairings=200, slowdowns=[0.10], shifts=[0.10], calibrate=[1, 3], false_alarms=0.01)
    rows = {(c["figure"], c["per_side"]): c for c in tv.calibrate(runs, args)}
    for c in rows.values():
        assert set(c["power"]) == {"+10%", "A+10%"}
    # the made-up +10% runs are A's noise slowed exactly: both ways agree within sampling
    three = rows[("windows", 3)]["power"]
    assert abs(three["+10%"] - three["A+10%"]) <= 0.15 and three["A+10%"] > 0.5
