"""Run files and suites are read through `runfile.files`: a device, a FIFO or an oversize file
given to `report`, `compare`, `check`, `run --resume`, `run --suite` or `list --suite` is one
line on stderr and exit 2; the run-time estimate passes over such files in results/runs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from mnist_bench.plan import estimate
from mnist_bench.runfile import files
from test_files import assert_one_line_exit_2, cap_memory, cli, fifo, sparse

GOOD_RUN = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"


@pytest.mark.parametrize(
    "command",
    [
        ("report", "{bad}"),
        ("report", "{good}", "{bad}", "--skip-bad"),  # skipped files are refused, never opened
        ("compare", "{good}", "{bad}"),
        ("check", "{good}", "--baseline", "{bad}"),
        ("run", "--resume", "{bad}"),
    ],
    ids=["report", "report-skip-bad", "compare", "check", "resume"],
)
@pytest.mark.parametrize("bad", ["/dev/zero", "fifo", "oversize"])
def test_bad_run_file_is_one_line(tmp_path, command, bad):
    if bad == "fifo":
        bad = str(fifo(tmp_path / "run.json"))
        reason = "not a regular file (a FIFO; expected a run file)"
    elif bad == "oversize":
        bad = str(sparse(tmp_path / "run.json", files.RUN_FILE_LIMIT + 2**20))
        reason = "too large for a run file (257 MiB; limit 256 MiB)"
    else:
        reason = "not a regular file (a character device; expected a run file)"
    args = [arg.format(good=GOOD_RUN, bad=bad) for arg in command]
    out = cli(*args)
    if "--skip-bad" in args:  # a warning, and the good file's report
        assert out.returncode == 0, out.stderr
        assert f"{bad}: {reason}" in out.stderr and "Traceback" not in out.stderr
        return
    assert_one_line_exit_2(out, f"mnist-bench {args[0]}: error: {bad}: {reason}")


@pytest.mark.parametrize("command", ["run", "list"])
@pytest.mark.parametrize("bad", ["/dev/zero", "fifo", "oversize"])
def test_bad_suite_is_one_line(tmp_path, command, bad):
    if bad == "fifo":
        bad = str(fifo(tmp_path / "suite.toml"))
        reason = "not a regular file (a FIFO; expected a suite)"
    elif bad == "oversize":
        bad = str(sparse(tmp_path / "suite.toml", files.SUITE_LIMIT + 2**20))
        reason = "too large for a suite (2 MiB; limit 1 MiB)"
    else:
        reason = "not a regular file (a character device; expected a suite)"
    extra = ["--results-dir", str(tmp_path / "runs")] if command == "run" else ["--no-probe"]
    out = cli(command, "--suite", bad, *extra)
    assert_one_line_exit_2(out, f"mnist-bench {command}: error: {bad}: {reason}")


def test_estimate_passes_over_devices_fifos_and_oversize_files(tmp_path):
    clean, folder = tmp_path / "clean", tmp_path / "runs"
    for f in (clean, folder):
        f.mkdir()
        shutil.copy(GOOD_RUN, f / "good.json")
    (folder / "zero.json").symlink_to("/dev/zero")
    fifo(folder / "fifo.json")
    sparse(folder / "huge.json", files.RUN_FILE_LIMIT + 2**20)
    code = (
        "import sys; from mnist_bench.plan import estimate; print(estimate.history([sys.argv[1]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=cap_memory,
    )
    assert out.returncode == 0, out.stderr
    learnt = estimate.history([clean])
    assert learnt and out.stdout.strip() == str(learnt)
