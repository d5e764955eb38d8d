"""Every command that writes a file on request follows one policy (`mnist_bench.runfile.output`): an
existing file only with --force; never one of its inputs, a symlink, a folder or a device, even
with --force; the write is atomic; the refusal is one line in the same words everywhere."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
from conftest import ROOT
from mnist_bench import cli
from mnist_bench.runfile import output

RUN = ROOT / "tests" / "fixtures" / "report" / "amd-jax-torch.json"
PUBLISHED = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "default.json"

# command -> (the arguments before the input, the arguments after it); each writes a file
COMMANDS = {
    "report": (["report"], ["--format", "markdown"]),
    "history": (["history"], ["--format", "markdown"]),
    "parity": (["parity"], ["--format", "markdown"]),
    "export": (["export"], ["--to", "bencher"]),
}
OPTIONS = {"history --plot": "--plot"}  # an output option other than --output


def argv(command: str, run, target, *extra: str) -> list[str]:
    head, tail = COMMANDS[command.split()[0]]
    option = OPTIONS.get(command, "-o")
    return [*head, str(run), *tail, option, str(target), *extra]


def the_run(command: str, tmp_path):
    """A copy of a run file the command can read (parity needs predicted labels)."""
    source = PUBLISHED if command == "parity" else RUN
    run = tmp_path / "in" / ("run.png" if "plot" in command else "run.json")  # --plot: a .png
    run.parent.mkdir(exist_ok=True)
    shutil.copy(source, run)
    return run


def refused(capsys, args: list[str]) -> str:
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


ALL = [*COMMANDS, *OPTIONS]


@pytest.mark.parametrize("command", ALL)
def test_a_new_file_is_written_whole_and_no_temporary_is_left(command, tmp_path, capsys):
    run = the_run(command, tmp_path)
    target = tmp_path / "out" / ("o.png" if "plot" in command else "o.txt")
    target.parent.mkdir()
    assert cli.main(argv(command, run, target)) == 0, capsys.readouterr().err
    assert target.stat().st_size > 0
    assert [p.name for p in target.parent.iterdir()] == [target.name]


@pytest.mark.parametrize("command", ALL)
def test_an_existing_file_is_replaced_only_with_force(command, tmp_path, capsys):
    run = the_run(command, tmp_path)
    mine = tmp_path / ("mine.png" if "plot" in command else "mine.txt")
    mine.write_text("my notes")
    line = refused(capsys, argv(command, run, mine))
    assert line == (
        f"mnist-bench {command.split()[0]}: error: refusing to overwrite {mine} "
        "(it exists; pass --force to replace it)"
    )
    assert mine.read_text() == "my notes"
    assert cli.main(argv(command, run, mine, "--force")) == 0, capsys.readouterr().err
    assert mine.read_bytes() != b"my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", mine.name]  # no temporary


@pytest.mark.parametrize("command", ALL)
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_an_input_is_never_overwritten(command, force, tmp_path, capsys):
    run = the_run(command, tmp_path)
    before = run.read_bytes()
    line = refused(capsys, argv(command, run, run, *force))
    assert line.endswith(f"refusing to overwrite {run} (it is one of the files this command reads)")
    # the same file by another name, and a run file inside a folder that is read
    link = tmp_path / f"hard{run.suffix}"
    os.link(run, link)
    line = refused(capsys, argv(command, run, link, *force))
    assert "one of the files this command reads" in line
    if command not in OPTIONS:  # a folder is read for its *.json files
        head, tail = COMMANDS[command]
        folder_args = [*head, str(run.parent), *tail, "-o", str(run), *force]
        assert "one of the files this command reads" in refused(capsys, folder_args)
    assert run.read_bytes() == before


def test_report_over_its_own_input_as_markdown_is_refused(tmp_path, capsys):
    """The case that turned a run file into Markdown."""
    run = tmp_path / "R.json"
    shutil.copy(RUN, run)
    for force in ([], ["--force"]):
        args = ["report", str(run), "--format", "markdown", "-o", str(run), *force]
        assert "one of the files this command reads" in refused(capsys, args)
    assert json.loads(run.read_text())["run_id"]


@pytest.mark.parametrize("command", ALL)
def test_a_symlink_folder_device_or_fifo_is_refused_even_with_force(command, tmp_path, capsys):
    run = the_run(command, tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    link = tmp_path / "link.png"
    link.symlink_to(precious)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "nowhere")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    cases = [
        (link, "a symlink"),
        (dangling, "a symlink"),
        (fifo, "a FIFO"),
        (folder, "a folder"),
    ]
    if command not in OPTIONS:  # --plot takes only a .png name
        cases.append(("/dev/null", "a character device"))
    for path, kind in cases:
        for force in ([], ["--force"]):
            line = refused(capsys, argv(command, run, path, *force))
            assert line.endswith(f"refusing to write {path} (it is {kind}; name a regular file)")
    assert precious.read_text() == "keep" and link.is_symlink() and dangling.is_symlink()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not (tmp_path / "nowhere").exists()
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["report", "history", "parity", "export"])
def test_force_alone_names_nothing(command, tmp_path, capsys):
    run = the_run(command, tmp_path)
    head, tail = COMMANDS[command]
    line = refused(capsys, [*head, str(run), *tail, "--force"])
    assert line.endswith("--force goes with --output FILE") or line.endswith(
        "--force goes with --output or --plot FILE"
    )


def test_history_output_and_plot_may_not_name_one_file(tmp_path, capsys):
    run = the_run("history", tmp_path)
    target = tmp_path / "h.png"
    args = ["history", str(run), "-o", str(target), "--plot", str(target)]
    assert refused(capsys, args).endswith(f"--output and --plot both name {target}; name two files")
    assert not target.exists()


def test_merge_follows_the_policy(tmp_path, capsys):
    """Refused before any shard is read; a replacement with --force is in test_shards."""
    shard = tmp_path / "shard.json"
    shard.write_text("{}")
    mine = tmp_path / "mine.json"
    mine.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(mine)
    assert refused(capsys, ["merge", str(shard), "-o", str(mine)]) == (
        f"mnist-bench merge: error: refusing to overwrite {mine} "
        "(it exists; pass --force to replace it)"
    )
    for force in ([], ["--force"]):
        line = refused(capsys, ["merge", str(shard), "-o", str(shard), *force])
        assert line.endswith("(it is one of the files this command reads)")
        line = refused(capsys, ["merge", str(tmp_path), "-o", str(mine), *force])
        assert line.endswith("(it is one of the files this command reads)")
        line = refused(capsys, ["merge", str(shard), "-o", str(link), *force])
        assert line.endswith("(it is a symlink; name a regular file)")
    assert mine.read_text() == "keep" and shard.read_text() == "{}"


def test_every_output_option_says_the_same(capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    writers = [name for name, p in sub.items() if any(a.dest == "output" for a in p._actions)]
    assert sorted(writers) == ["export", "history", "merge", "parity", "report"]
    for name in writers:
        actions = {a.dest: a for a in sub[name]._actions}
        assert actions["output"].help.endswith(output.RULE), name
        assert actions["force"].help == output.FORCE_HELP, name
