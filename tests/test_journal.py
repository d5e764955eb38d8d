"""The run journal: records appended as they land, folded into the run file at the end, on an
interrupt and on `--resume`; nothing journaled is lost to a kill -9 or a full disk.

The runs here are real `Run`s whose backend is made to look uninstalled, so every job yields a
`skipped` record at once (the runner's own path, no worker): the saving is what is under test.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_record
from mnist_bench.cli import main
from mnist_bench.core import environment
from mnist_bench.core.config import RunConfig
from mnist_bench.core.errors import UserError
from mnist_bench.execute import launcher
from mnist_bench.execute.runner import Interrupted, Run
from mnist_bench.runfile import journal, storage
from mnist_bench.runfile.records import SCHEMA_VERSION, RunFile, load_run


@pytest.fixture
def no_backend(monkeypatch):
    """Every backend looks uninstalled: each job becomes a skipped record, with no worker."""
    monkeypatch.setattr(environment, "installed_backends", lambda: [])


def start(folder: Path, seeds: int = 4) -> Run:
    config = RunConfig(
        backends=("torch",),
        variants=("two-dense",),
        seeds=tuple(range(seeds)),
        results_dir=str(folder),
    )
    return Run.start(config)


class Watch(launcher.Observer):
    """Calls `each(n)` as the n-th record (from 1) arrives, before the runner saves it."""

    def __init__(self, each) -> None:
        self.each, self.n = each, 0

    def on_record(self, job, record):
        self.n += 1
        self.each(self.n)


def journal_lines(run_path: Path) -> list[dict]:
    return [json.loads(line) for line in journal.path_for(run_path).read_text().splitlines()]


def test_records_go_to_the_journal_then_are_folded_in(tmp_path, no_backend):
    run = start(tmp_path)
    path = run.path
    seen = []

    def check(n: int) -> None:  # the records before the n-th are saved, the file not rewritten
        on_disk = json.loads(path.read_text())
        assert on_disk["status"] == "running" and on_disk["records"] == []
        if n > 1:
            lines = journal_lines(path)
            assert [line["record"]["job"]["seed"] for line in lines] == list(range(n - 1))
            assert "environment" not in lines[0], "unchanged since the run file: not repeated"
        assert [r.seed for r in load_run(path).records] == list(range(n - 1))
        seen.append(n)

    run.execute(Watch(check))
    assert seen == [1, 2, 3, 4]
    assert not journal.path_for(path).exists(), "folded in and removed"
    done = load_run(path)
    assert done.status == "complete" and done.stop_reason is None
    assert [(r.seed, r.status) for r in done.records] == [(s, "skipped") for s in range(4)]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_changed_environment_is_journaled_with_the_record(tmp_path, no_backend):
    run = start(tmp_path)

    def note(n: int) -> None:
        if n == 2:  # as a worker reporting its backend does (`_GpuNoting.on_ready`)
            run.file.environment.setdefault("backends", {})["torch"] = {"version": "9.9"}
        if n == 4:
            lines = journal_lines(run.path)
            assert ["environment" in line for line in lines] == [False, True, False]
            assert load_run(run.path).environment["backends"] == {"torch": {"version": "9.9"}}

    run.execute(Watch(note))
    assert load_run(run.path).environment["backends"] == {"torch": {"version": "9.9"}}


def test_the_folder_scan_skips_the_journal(tmp_path, no_backend):
    from mnist_bench.runfile import collect

    run = start(tmp_path)
    scans = []
    run.execute(Watch(lambda n: n == 3 and scans.append(collect.run_files([tmp_path]))))
    assert journal.path_for(run.path).name == f"{run.path.name}.journal"
    assert scans == [[run.path]]


def test_kill_9_mid_run_loses_no_journaled_record_and_resume_folds_it(tmp_path, no_backend):
    code = (
        "import os, signal, sys\n"
        "from mnist_bench.core import environment; from mnist_bench.execute import launcher\n"
        "environment.installed_backends = lambda: []\n"
        "from mnist_bench.core.config import RunConfig\n"
        "from mnist_bench.execute.runner import Run\n"
        "run = Run.start(RunConfig(backends=('torch',), variants=('two-dense',),\n"
        "                          seeds=(0, 1, 2, 3), results_dir=sys.argv[1]))\n"
        "class KillAtThird(launcher.Observer):\n"
        "    def on_record(self, job, record):\n"
        "        if record.seed == 2:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "run.execute(KillAtThird())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (path,) = tmp_path.glob("*.json")
    assert json.loads(path.read_text())["records"] == []
    crashed = load_run(path)
    assert crashed.status == "running" and [r.seed for r in crashed.records] == [0, 1]

    run = Run.resume(path)
    assert [job.seed for job in run.pending] == [2, 3]
    assert not journal.path_for(path).exists(), "--resume folds the journal into the file"
    on_disk = json.loads(path.read_text())
    assert on_disk["status"] == "running" and len(on_disk["records"]) == 2
    run.execute(launcher.Observer())
    assert not journal.path_for(path).exists()
    done = load_run(path)
    assert done.status == "complete" and sorted(r.seed for r in done.records) == [0, 1, 2, 3]


def test_resume_folds_the_journal_into_the_file_before_running(tmp_path, no_backend):
    run = start(tmp_path)
    with pytest.raises(Interrupted):
        run.execute(Watch(lambda n: n == 3 and _raise(Interrupted(signal.SIGINT))))
    path = run.path
    stopped = load_run(path)
    assert stopped.status == "interrupted" and stopped.stop_reason == "interrupted by SIGINT"
    assert [r.seed for r in stopped.records] == [0, 1]
    assert [job.seed for job in stopped.pending] == [2, 3]
    assert not journal.path_for(path).exists()

    resumed = Run.resume(path)
    on_disk = []
    resumed.execute(Watch(lambda n: on_disk.append(json.loads(path.read_text()))))
    assert [(d["status"], len(d["records"]), d["stop_reason"]) for d in on_disk] == [
        ("running", 2, None),
        ("running", 2, None),
    ]
    assert [r.seed for r in load_run(path).records] == [0, 1, 2, 3]


def _raise(exc: BaseException) -> None:
    raise exc


# ------------------------------------------------------------------------- reading a journal
def running_file(tmp_path: Path, *seeds: int) -> Path:
    path = tmp_path / "run.json"
    run = RunFile(
        "r1",
        "2026-11-25T00:00:00Z",
        {},
        {"machine_id": "abc"},
        [make_record(seed=s, test_accuracy=0.9) for s in seeds],
        schema_version=SCHEMA_VERSION,
    )
    storage.write_json(path, run.to_dict())
    return path


def append(path: Path, *seeds: int, environment: dict | None = None) -> None:
    j = journal.Journal(path, {"machine_id": "abc"})
    for seed in seeds:
        j.append(make_record(seed=seed, test_accuracy=0.5), environment or {"machine_id": "abc"})


def test_a_torn_last_line_is_ignored_with_a_warning(tmp_path, capsys):
    path = running_file(tmp_path, 0)
    append(path, 1, 2)
    journal_path = journal.path_for(path)
    whole = journal_path.read_bytes()
    journal_path.write_bytes(whole[: len(whole) - 40])  # the crash cut the last write short
    run = load_run(path)
    assert [r.seed for r in run.records] == [0, 1]
    err = capsys.readouterr().err
    warning = f"{journal_path}: last line is incomplete (a crash mid-write?); ignored"
    assert err == f"mnist-bench: warning: {warning}\n"


def test_a_bad_line_before_the_last_is_one_line_error(tmp_path):
    path = running_file(tmp_path)
    append(path, 1)
    with journal.path_for(path).open("ab") as f:
        f.write(b'{"record": {"job": 5}}\n')
    append(path, 2)
    with pytest.raises(UserError, match=r"line 2 is not a journal entry \(record.job: expected"):
        load_run(path)


def test_journaled_records_already_in_the_file_are_not_doubled(tmp_path):
    path = running_file(tmp_path, 0, 1)
    append(path, 1, 2)  # a crash after the fold's write, before the journal was removed
    run = load_run(path)
    assert [(r.seed, r.test_accuracy) for r in run.records] == [(0, 0.9), (1, 0.9), (2, 0.5)]


def test_a_finished_run_file_ignores_a_leftover_journal(tmp_path):
    path = running_file(tmp_path, 0)
    data = json.loads(path.read_text())
    storage.write_json(path, {**data, "status": "complete"})
    append(path, 1)
    assert [r.seed for r in load_run(path).records] == [0]


# ------------------------------------------------------------------------------ a full disk
def _fail_journal_fsyncs(monkeypatch: pytest.MonkeyPatch, times: int | None = None) -> None:
    """fsync fails with ENOSPC on the journal (`times` times, or always on every file)."""
    real_fsync = os.fsync
    left = [times]

    def fsync(fd):
        journal_fd = os.readlink(f"/proc/self/fd/{fd}").endswith(journal.SUFFIX)
        if left[0] is None or (journal_fd and left[0] > 0):
            if left[0] is not None:
                left[0] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


@needs_proc
def test_disk_full_marks_the_run_interrupted_and_names_resume(tmp_path, no_backend):
    run = start(tmp_path)
    path = run.path
    # The disk fills as the third record is saved, and has room again for the marking.
    with pytest.MonkeyPatch.context() as m, pytest.raises(UserError) as err:
        run.execute(Watch(lambda n: n == 3 and _fail_journal_fsyncs(m, times=1)))
    message = str(err.value)
    assert message == (
        f"{journal.path_for(path)}: cannot write results (disk full); "
        f"finish with: mnist-bench run --resume {path}"
    )
    stopped = load_run(path)
    assert stopped.status == "interrupted"
    assert stopped.stop_reason == f"{journal.path_for(path)}: cannot write results (disk full)"
    assert [r.seed for r in stopped.records] == [0, 1, 2], "the one in hand is kept too"
    assert [job.seed for job in stopped.pending] == [3]
    assert not journal.path_for(path).exists()


@needs_proc
def test_disk_full_with_no_room_to_mark_keeps_the_journal(tmp_path, no_backend):
    run = start(tmp_path)
    path = run.path
    resume = r"\(disk full\); finish with: mnist-bench run --resume"
    with pytest.MonkeyPatch.context() as m, pytest.raises(UserError, match=resume):
        run.execute(Watch(lambda n: n == 3 and _fail_journal_fsyncs(m)))  # every write fails
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"
    assert len(journal_lines(path)) == 2, "the failed append left no torn line"
    crashed = load_run(path)
    assert crashed.status == "running" and [r.seed for r in crashed.records] == [0, 1]
    resumed = Run.resume(path)
    resumed.execute(launcher.Observer())
    assert [r.seed for r in load_run(path).records] == [0, 1, 2, 3]


@needs_proc
def test_disk_full_from_the_command_line_is_one_line_exit_2(tmp_path, no_backend, capsys):
    with pytest.MonkeyPatch.context() as m:
        _fail_journal_fsyncs(m, times=1)
        code = main(
            [
                "run",
                "-b",
                "torch",
                "-v",
                "two-dense",
                "--seeds",
                "0,1",
                "--results-dir",
                str(tmp_path),
            ]
        )
    assert code == 2
    (path,) = tmp_path.glob("*.json")
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"mnist-bench run: error: {journal.path_for(path)}: cannot write results (disk full); "
        f"finish with: mnist-bench run --resume {path}"
    ]
    assert load_run(path).status == "interrupted"


# ---------------------------------------------------------------------------------- --resume
def test_resume_with_other_run_options_is_refused(tmp_path, capsys):
    path = tmp_path / "missing.json"  # refused before the file is read
    code = main(["run", "--resume", str(path), "--epochs", "3", "-b", "torch", "--repeats", "2"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "mnist-bench run: error: --resume finishes a run with its own configuration; "
        "drop --backend, --epochs, --repeats"
    ]


def test_an_append_cut_short_by_a_full_disk_leaves_no_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "log"
    storage.append_durable(path, b"first\n")
    real_write = os.write

    def write(fd, data):  # part of the line lands, then the disk is full
        if len(data) > 5:
            return real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(UserError, match=rf"^{path}: cannot write results \(disk full\)$"):
        storage.append_durable(path, b"second line\n", what="results")
    monkeypatch.undo()
    assert path.read_bytes() == b"first\n"
