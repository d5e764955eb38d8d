"""What makes reading thousands of run files fast keeps their meaning: the folder listing, the
index's keys, `mnist-bench index`'s stat-only check, the report rows' kept answers, and
history's commits hashed without their run ids."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import run_cli
from mnist_bench.analyse import history
from mnist_bench.analyse.rows import rows
from mnist_bench.runfile import collect, index
from mnist_bench.runfile.records import run_files_in
from test_index import entries, own_index, plain, runs, write_files  # noqa: F401  (the fixture: an index per test)


def rglob_listing(folder: Path) -> list[Path]:
    """What `run_files_in` listed with `Path.rglob` before it used `os.scandir`."""
    return sorted(
        path
        for path in folder.rglob("*.json")
        if not any(part.startswith(".") for part in path.relative_to(folder).parent.parts)
        and path.is_file()
    )


def test_the_scandir_listing_is_the_rglob_listing(tmp_path):
    top = tmp_path / "top"
    names = ("a/x.json", "a-c/q.json", "b/c/z.json", ".hidden/h.json", "e/.f/g/k.json", "e/m.json",
             ".top.json", "A.json", "r.json", "d.json/in.json", "a/y.txt")  # fmt: skip
    for name in names:
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text("{}")
    (top / "linked").symlink_to(top / "a")  # a link to a folder is not followed
    (top / "link.json").symlink_to(top / "r.json")  # a link to a file is listed
    (top / "broken.json").symlink_to(top / "nowhere.json")  # a broken one is not
    for folder in (top, Path(os.path.relpath(top))):
        assert run_files_in(folder) == rglob_listing(folder)
    names = [str(p.relative_to(top)) for p in run_files_in(top)]
    assert names[:4] == [".top.json", "A.json", "a/x.json", "a-c/q.json"]  # sorted as paths are
    assert "linked/x.json" not in names and "broken.json" not in names


@pytest.mark.parametrize(
    "path",
    [
        "/a/b.json",
        "/a/./b.json",
        "/a/../b.json",
        "/a//b.json",
        "/a/.h/x.json",
        "/a/b/",
        "rel/x.json",
        "./x.json",
        "/",
        "//a",
    ],  # fmt: skip
)
def test_an_entry_key_is_the_absolute_normal_path(path):
    assert index._key(Path(path) if path != "//a" else path) == os.path.abspath(path)  # type: ignore[arg-type]


def test_index_command_trusts_a_fresh_stat_and_reads_a_changed_file(tmp_path, own_index):  # noqa: F811
    folder = tmp_path / "runs"
    paths = write_files(folder, 4)
    assert (
        run_cli(
            "index", str(folder), env={"MNIST_BENCH_CACHE_DIR": str(own_index.parent)}
        ).returncode
        == 0
    )
    with sqlite3.connect(own_index) as db:  # spoil one entry: only a decode would notice
        db.execute("UPDATE runs SET run = x'c1' WHERE path = ?", (str(paths[0]),))
    env = {"MNIST_BENCH_CACHE_DIR": str(own_index.parent)}
    out = run_cli("index", str(folder), env=env)
    assert "(0 read, 4 unchanged)" in out.stdout, out.stdout + out.stderr
    assert runs(folder) == plain(folder)  # a reader decodes it, fails, and reads the file
    paths[1].write_text(paths[1].read_text().replace('"jax"', '"jax" ', 1))  # changed content
    out = run_cli("index", str(folder), env=env)
    assert "(1 read, 3 unchanged)" in out.stdout, out.stdout + out.stderr
    paths[2].unlink()
    out = run_cli("index", str(folder), env=env)
    assert "3 run files indexed (0 read, 3 unchanged)" in out.stdout
    with sqlite3.connect(own_index) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 3  # the gone one dropped


def test_a_row_answers_again_once_a_record_joins_it(tmp_path):
    loaded = collect.load_runs([p for p in write_files(tmp_path / "runs", 2)])
    records = [r for x in loaded for r in x.run.records]
    (row, *_) = rows(records, by=("variant", "backend", "device"))
    seeds, values = row.seeds, row.values("test_accuracy")
    assert not row.contended
    first = row.records[0]
    extra = dataclasses.replace(first, job=dataclasses.replace(first.job, seed=99), contended=True)
    row.records.append(extra)
    assert row.seeds == seeds + 1 and len(row.values("test_accuracy")) == len(values) + 1
    assert row.contended
    row.values("test_accuracy").append(9.0)  # a caller's list is its own
    assert 9.0 not in row.values("test_accuracy")


def test_history_commits_are_equal_by_every_field_and_hashed_without_run_ids():
    when = datetime(2026, 12, 1, tzinfo=UTC)
    a = history.Commit("f" * 40, False, when, ("r1", "r2"))
    b = history.Commit("f" * 40, False, when, ("r1", "r2"))
    c = history.Commit("f" * 40, False, when, ("r1",))
    assert a == b and hash(a) == hash(b)
    assert a != c and len({a, b, c}) == 2


def test_a_reader_looks_up_only_the_entries_of_the_files_it_reads(tmp_path, own_index):  # noqa: F811
    """The index is shared by every results folder: reading one folder neither loads nor drops
    the entries of another (not even of a sibling whose name starts like it)."""
    write_files(tmp_path / "runs", 3)
    write_files(tmp_path / "runs-old", 4)
    write_files(tmp_path / "runs" / "sub", 2, start=20)
    runs(tmp_path / "runs")
    runs(tmp_path / "runs-old")
    assert entries(own_index) == 9
    files = collect.run_files([tmp_path / "runs"])
    with index.Reader(files, [tmp_path / "runs"]) as read:
        assert set(read.known) == {os.path.abspath(f) for f in files}
        assert len(read.known) == 5
    (tmp_path / "runs" / "sub" / sorted(os.listdir(tmp_path / "runs" / "sub"))[0]).unlink()
    assert len(runs(tmp_path / "runs")) == 4
    assert entries(own_index) == 8  # the deleted file's entry dropped, runs-old's kept
    assert len(runs(tmp_path / "runs-old")) == 4
    with index.Reader(collect.run_files([tmp_path / "runs-old"])) as read:
        for path in read.files:
            read(path)
    assert read.read == 0
