"""What each reader asks of the run index (`index.View`) changes none of its output: every
command's output read through a warm index (the table view where the command asks for it) is
byte for byte what it is with the index off. And each view holds what it says it holds."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import ROOT
from mnist_bench import cli
from mnist_bench.runfile import collect, index
from mnist_bench.runfile.records import Record, load_run

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The stored real runs: two machines, three commits, failed records, latency, curves."""
    out = tmp_path / "runs"
    out.mkdir()
    for name in ("report/amd-jax-torch.json", "report/intel-jax.json", "gate/aa.json",
                 "gate/baseline.json", "gate/regressed.json"):  # fmt: skip
        shutil.copy(FIXTURES / name, out / Path(name).name)
    return out


def commands(folder: Path) -> list[list[str]]:
    runs = str(folder)
    base, new = str(folder / "baseline.json"), str(folder / "regressed.json")
    return [
        ["report", runs, "--format", "markdown"],
        ["report", runs, "--format", "csv"],
        ["report", runs, "--format", "csv", "--raw"],
        ["report", runs, "--format", "table"],
        ["report", runs, "--group-by", "variant,machine", "--format", "markdown"],
        ["report", runs, "--format", "html"],
        ["history", runs],
        ["history", runs, "--format", "markdown"],
        ["history", runs, "--format", "json"],
        ["compare", base, new, "--format", "json"],
        ["compare", base, new, "--format", "markdown"],
        ["check", new, "--baseline", base, "--format", "json"],
        ["check", str(folder / "aa.json"), "--baseline", base],
        ["export", runs, "--to", "github-action-benchmark"],
        ["export", runs, "--to", "bencher"],
    ]


def output(argv: list[str], capsys) -> tuple[int, str, str]:
    """The exit code, standard output (a page's minute of making left out) and error."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "Generated", out), err


def entries(location: Path) -> int:
    with sqlite3.connect(location) as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_every_command_reads_the_same_through_a_warm_index(folder, tmp_path, monkeypatch, capsys):
    location = tmp_path / "index.sqlite"
    for argv in commands(folder):
        monkeypatch.setenv(index.INDEX_ENV, "off")
        plain = output(argv, capsys)
        monkeypatch.setenv(index.INDEX_ENV, str(location))
        filling = output(argv, capsys)  # the first read through the index fills it
        warm = output(argv, capsys)  # the second reads the index's entries
        assert plain[1], argv
        assert filling == plain, argv
        assert warm == plain, argv
    assert entries(location) == 5


def test_the_table_view_leaves_out_only_what_it_names(folder, monkeypatch, tmp_path):
    monkeypatch.setenv(index.INDEX_ENV, str(tmp_path / "index.sqlite"))
    files = collect.run_files([folder])
    collect.load_runs([folder])  # fills the index
    whole = {p: load_run(p) for p in files}
    left_out = set(index.TABLE_LEFT_OUT) | set(index.SUMMARY_LEFT_OUT)
    with index.Reader(files, view="table") as read:
        table = {p: read(p) for p in files}
        assert read.read == 0  # every run came from the index
    for path, run in table.items():
        expected = whole[path]
        assert run.environment == expected.environment and run.config == expected.config
        assert run.aggregates == []
        for got, want in zip(run.records, expected.records, strict=True):
            for f in dataclasses.fields(Record):
                value = getattr(got, f.name)
                if f.name in left_out:
                    default = f.default_factory() if callable(f.default_factory) else f.default
                    assert value == default, f.name
                else:
                    assert value == getattr(want, f.name), f.name
    # Some left-out field held something: the view does leave it out.
    assert any(r.confusion_matrix for run in whole.values() for r in run.records)
    assert any(r.latency_ms for run in whole.values() for r in run.records)
    # Runs with one environment block share one dict (read, never changed).
    blocks = [run.environment for run in table.values()]
    assert len({id(b) for b in blocks}) == len({json.dumps(b, sort_keys=True) for b in blocks})


def test_the_summary_view_from_the_index_is_the_file_less_its_labels(folder, monkeypatch, tmp_path):
    monkeypatch.setenv(index.INDEX_ENV, str(tmp_path / "index.sqlite"))
    files = collect.run_files([folder])
    collect.load_runs([folder], view="table")  # fills the index: entries hold all of a summary
    with index.Reader(files) as read:
        got = {p: read(p) for p in files}
        assert read.read == 0
    for path, run in got.items():
        assert run == index.summary(load_run(path)), path


def test_a_touched_file_read_in_the_table_view_keeps_its_whole_entry(folder, monkeypatch, tmp_path):
    """A file touched (not changed) is re-stamped from its entry: read in the table view, the
    entry written again still holds what the table view leaves out."""
    import os

    monkeypatch.setenv(index.INDEX_ENV, str(tmp_path / "index.sqlite"))
    path = folder / "amd-jax-torch.json"
    collect.load_runs([folder])
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    with index.Reader([path], view="table") as read:
        read(path)
        assert read.read == 0  # the same bytes: not decoded from the file again
    with index.Reader([path]) as read:
        assert read(path) == index.summary(load_run(path))
        assert read.read == 0


def test_an_unknown_view_is_refused():
    with pytest.raises(ValueError, match="view 'slim' is not one of full, summary, table"):
        index.Reader([], view="slim")  # type: ignore[arg-type]


def test_runs_of_one_grid_share_their_jobs_and_no_other_does(tmp_path, monkeypatch):
    monkeypatch.setenv(index.INDEX_ENV, str(tmp_path / "index.sqlite"))
    folder = tmp_path / "grid"
    folder.mkdir()
    data = json.loads((FIXTURES / "report" / "amd-jax-torch.json").read_text())
    for i, seed in enumerate((None, None, 7)):  # the third run's first job has another seed
        data["run_id"] = f"20261201T00000{i}Z-00000{i}"
        if seed is not None:
            data["records"][0]["seed"] = seed  # a schema 1 file: the job inline
        (folder / f"{data['run_id']}.json").write_text(json.dumps(data))
    files = collect.run_files([folder])
    collect.load_runs([folder])  # fills the index
    for view in ("table", "summary"):
        with index.Reader(files, view=view) as read:
            first, second, third = (read(p) for p in files)
            assert read.read == 0
        assert all(a.job is b.job for a, b in zip(first.records, second.records, strict=True))
        assert third.records[0].job.seed == 7 and third.records[0].job != first.records[0].job
        assert all(
            a.job is b.job for a, b in zip(first.records[1:], third.records[1:], strict=True)
        )
        for path, run in zip(files, (first, second, third), strict=True):
            assert [r.job for r in run.records] == [r.job for r in load_run(path).records]


def test_the_history_page_and_plot_are_the_same_through_a_warm_index(
    folder, tmp_path, monkeypatch, capsys
):
    written = {}
    for name, where in (("off", "off"), ("fill", "index.sqlite"), ("warm", "index.sqlite")):
        monkeypatch.setenv(index.INDEX_ENV, where if where == "off" else str(tmp_path / where))
        page, plot = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
        argv = ["history", str(folder), "--format", "html", "--output", str(page)]
        assert output([*argv, "--plot", str(plot)], capsys)[0] == 0
        text = re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", page.read_text())
        written[name] = (text, plot.read_bytes())
    assert written["warm"] == written["off"]
    assert written["fill"] == written["off"]
