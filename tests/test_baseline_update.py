"""`baseline update` replaces its own file (DIR/<suite stem>.json) and touches nothing else."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAKE_WORKER, ROOT, run_cli
from mnist_bench.core import environment
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import load_run

INSTALLED = environment.installed_backends()
BACKEND = "jax" if "jax" in INSTALLED else (INSTALLED[0] if INSTALLED else None)
OTHER_RUN = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"


def tiny_suite(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'variants = ["single-dense"]\n'
        f'backends = ["{BACKEND}"]\n'
        "train_limit = 256\n"
        "test_limit = 128\n"
        "infer_batch_sizes = [8]\n"
        "\n[settings]\nepochs = 1\n"
    )
    return path


@pytest.mark.skipif(BACKEND is None, reason="no backend installed")
def test_update_replaces_its_own_file_and_nothing_else(tmp_path):
    folder = tmp_path / "baseline"
    folder.mkdir()
    (folder / "package.json").write_text('{"name": "not a run file"}\n')
    (folder / "notes.txt").write_text("why the baseline moved\n")
    shutil.copy(OTHER_RUN, folder / "other-run.json")
    (folder / "tiny.json").write_text("the previous baseline\n")  # its own file: replaced
    foreign = {
        name: (folder / name).read_bytes()
        for name in ("package.json", "notes.txt", "other-run.json")
    }

    out = run_cli(
        "baseline",
        "update",
        "--suite",
        str(tiny_suite(tmp_path)),
        "--baseline-dir",
        str(folder),
        env=FAKE_WORKER,  # what is tested is which files change, not training
    )

    assert out.returncode == 0, out.stderr
    assert f"baseline updated: {folder / 'tiny.json'}" in out.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted([*foreign, "tiny.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline", "tiny.toml"]  # staging gone
    for name, content in foreign.items():
        assert (folder / name).read_bytes() == content, name
    run = load_run(folder / "tiny.json")
    assert run.status == "complete"
    assert [(r.variant, r.backend, r.status) for r in run.records] == [
        ("single-dense", BACKEND, "ok")
    ]


def test_update_refuses_a_folder_in_place_of_its_file(tmp_path):
    folder = tmp_path / "baseline"
    (folder / "tiny.json").mkdir(parents=True)
    (folder / "tiny.json" / "keep.txt").write_text("x")
    out = run_cli(
        "baseline", "update", "--suite", str(tiny_suite(tmp_path)), "--baseline-dir", str(folder)
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"mnist-bench baseline: error: {folder / 'tiny.json'}: not a regular file; "
        "baseline not updated"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.json"]
    assert (folder / "tiny.json" / "keep.txt").read_text() == "x"


# ------------------------------------------------------------------------------ interrupted
def two_job_suite(tmp_path):
    """Four seeds of one net: the update can be stopped after its first record, with more left."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        'variants = ["single-dense"]\n'
        f'backends = ["{BACKEND}"]\n'
        "seeds = [0, 1, 2, 3]\n"
        "train_limit = 600\n"
        "test_limit = 300\n"
        "infer_batch_sizes = [8]\n"
        "\n[settings]\nepochs = 1\n"
    )
    return path


def start_update(suite, folder) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_bench", "baseline", "update"]
        + ["--suite", str(suite), "--baseline-dir", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group: the kill below reaches its worker too
    )


def staged_after_first_record(folder, process, timeout: float = 300) -> Path:
    """The staged run file, once its journal holds a record (the update is then mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for journal in folder.parent.glob(f".{folder.name}.update-*/*.json.journal"):
            if journal.read_bytes().count(b"\n") >= 1:
                return journal.with_suffix("")
        time.sleep(0.05)
    raise AssertionError("no record landed in time")


def seen_by_readers(root) -> set[str]:
    """The run ids a folder scan reads (report, compare, check, history, parity, export)."""
    return {loaded.run.run_id for loaded in collect.load_runs([root])}


def old_baseline(folder):
    folder.mkdir()
    shutil.copy(OTHER_RUN, folder / "tiny.json")
    return (folder / "tiny.json").read_bytes()


def assert_resumes(suite, folder, staged, before: int):
    out = run_cli(
        "baseline", "update", "--suite", str(suite), "--baseline-dir", str(folder),
        "--resume", str(staged),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run = load_run(folder / "tiny.json")
    assert run.status == "complete" and sorted(r.seed for r in run.records) == [0, 1, 2, 3]
    assert len(run.records) == 4 and before >= 1
    assert sorted(p.name for p in folder.parent.iterdir()) == ["baseline", "tiny.toml"]
    assert [p.name for p in folder.iterdir()] == ["tiny.json"]


@pytest.mark.skipif(BACKEND is None, reason="no backend installed")
@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM]
)
def test_an_interrupted_update_keeps_its_records_at_the_path_it_names(tmp_path, signum):
    suite, folder = two_job_suite(tmp_path), tmp_path / "baseline"
    before = old_baseline(folder)
    process = start_update(suite, folder)
    staged = staged_after_first_record(folder, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)

    assert process.returncode == 128 + signum, err
    finish = re.search(r"finish with: (.*)", err).group(1)
    assert finish == shlex.join(
        ["mnist-bench", "baseline", "update", "--suite", str(suite), "--baseline-dir", str(folder)]
        + ["--resume", str(staged)]
    )
    assert "baseline not updated" in err
    assert (folder / "tiny.json").read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["tiny.json"]
    staged_run = load_run(staged)
    assert staged_run.status == "interrupted" and staged_run.records and staged_run.pending
    assert staged_run.run_id not in seen_by_readers(tmp_path)
    if signum == signal.SIGINT:  # the resume is the same after either signal (a minute: slow)
        assert_resumes(suite, folder, staged, len(staged_run.records))


@pytest.mark.slow  # two trainings, about a minute
@pytest.mark.skipif(BACKEND is None, reason="no backend installed")
def test_a_killed_update_is_invisible_to_readers_and_resumable(tmp_path):
    suite, folder = two_job_suite(tmp_path), tmp_path / "baseline"
    before = old_baseline(folder)
    process = start_update(suite, folder)
    staged = staged_after_first_record(folder, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)

    assert (folder / "tiny.json").read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["tiny.json"]  # nothing staged inside
    partial = load_run(staged)  # `running`, its journal folded in
    assert partial.status == "running" and partial.records
    old = load_run(folder / "tiny.json").run_id
    assert seen_by_readers(tmp_path) == seen_by_readers(folder) == {old}
    report = run_cli("report", str(tmp_path), "--format", "csv", "--raw")
    assert report.returncode == 0 and partial.run_id not in report.stdout, report.stderr
    check = run_cli("check", str(folder / "tiny.json"), "--baseline", str(folder))
    assert partial.run_id not in check.stdout + check.stderr

    # the next update names the stopped one and how to finish it
    noted = run_cli(
        "baseline", "update", "--suite", str(tmp_path / "none.toml"), "--baseline-dir", str(folder)
    )
    assert noted.returncode == 2
    assert noted.stderr.splitlines()[0] == (
        "mnist-bench baseline: note: an earlier update stopped; finish it with: "
        + shlex.join(
            ["mnist-bench", "baseline", "update", "--suite", str(tmp_path / "none.toml")]
            + ["--baseline-dir", str(folder), "--resume", str(staged)]
        )
        + f" (or delete {staged.parent})"
    )
    assert_resumes(suite, folder, staged, len(partial.records))


def test_resume_takes_only_a_staged_run_of_this_baseline(tmp_path):
    folder = tmp_path / "baseline"
    old_baseline(folder)
    suite = two_job_suite(tmp_path)
    for path in (folder / "tiny.json", OTHER_RUN, tmp_path / ".other.update-x" / "r.json"):
        out = run_cli(
            "baseline", "update", "--suite", str(suite), "--baseline-dir", str(folder),
            "--resume", str(path),
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert f"--resume {path}: not a staged run of an update of {folder}" in out.stderr
    staged = tmp_path / ".baseline.update-x" / "r.json"
    staged.parent.mkdir()
    shutil.copy(OTHER_RUN, staged)
    out = run_cli(
        "baseline", "update", "--suite", str(suite), "--baseline-dir", str(folder),
        "--resume", str(staged),
    )  # fmt: skip
    assert out.returncode == 2
    assert f"--resume {staged}: staged from another suite than {suite}" in out.stderr


def test_an_update_that_cannot_start_leaves_no_staging_folder(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(f'data = "{tmp_path / "none.npz"}"\n' + tiny_suite(tmp_path).read_text())
    folder = tmp_path / "baseline"
    out = run_cli("baseline", "update", "--suite", str(suite), "--baseline-dir", str(folder))
    assert out.returncode == 2 and "none.npz" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline", "tiny.toml"]
