"""The run index: a cache of decoded run files that readers use and never trust over the files.

Every test has its own index (`MNIST_BENCH_CACHE_DIR` in a temporary folder) and a few dozen
run files made from the stored fixtures."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import collect, index
from mnist_bench.runfile.records import load_run, pack_labels

FIXTURES = ROOT / "tests" / "fixtures" / "report"


@pytest.fixture(autouse=True)
def own_index(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MNIST_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(index.INDEX_ENV, raising=False)
    return tmp_path / "cache" / index.INDEX_NAME


def write_files(folder: Path, count: int, start: int = 0) -> list[Path]:
    """`count` run files from the two fixtures, each with a run id of its own; the first record
    of each keeps predicted labels."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        data = json.loads((FIXTURES / ("intel-jax.json", "amd-jax-torch.json")[i % 2]).read_text())
        data["run_id"] = f"20261201T000000Z-{i:06x}"
        first = data["records"][0]
        first["predicted_labels"] = pack_labels([i % 10] * first["test_samples"])
        first["confusion_matrix"] = None
        first["misclassified"] = [[i % 50, 1, 7]]
        path = folder / f"{data['run_id']}.json"
        path.write_text(json.dumps(data, indent=1))
        paths.append(path)
    return paths


def runs(*paths: Path, **options) -> list:
    return [(loaded.path, loaded.run) for loaded in collect.load_runs(paths, **options)]


def entries(location: Path) -> int:
    with sqlite3.connect(location) as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


def plain(*paths: Path, **options) -> list:
    """What the files say, read without the index."""
    os.environ[index.INDEX_ENV] = "off"
    try:
        return runs(*paths, **options)
    finally:
        del os.environ[index.INDEX_ENV]


def test_warm_reads_equal_cold_reads_and_the_files(tmp_path, own_index):
    write_files(tmp_path / "runs", 30)
    cold = runs(tmp_path / "runs")
    assert entries(own_index) == 30
    warm = runs(tmp_path / "runs")
    assert warm == cold == plain(tmp_path / "runs")
    assert all(
        r.predicted_labels is None and r.misclassified == [] for _, run in warm for r in run.records
    )
    assert all(run.aggregates == [] for _, run in warm)
    with index.Reader(collect.run_files([tmp_path / "runs"])) as read:
        for path in read.files:
            read(path)
    assert read.read == 0  # every one from the index


def test_full_reads_keep_the_labels_parity_needs(tmp_path):
    paths = write_files(tmp_path / "runs", 4)
    runs(tmp_path / "runs")
    full = runs(tmp_path / "runs", full=True)
    assert [run for _, run in full] == [load_run(p) for p in paths]
    assert all(run.records[0].predicted_labels for _, run in full)
    assert any(r.misclassified for _, run in full for r in run.records)
    assert any(run.aggregates for _, run in full)
    summaries = collect.load_runs([tmp_path / "runs"])
    assert not any(loaded.complete for loaded in summaries)
    assert [loaded.run for loaded in collect.complete(summaries)] == [run for _, run in full]


def test_a_changed_deleted_added_or_touched_file_is_seen(tmp_path, own_index):
    paths = write_files(tmp_path / "runs", 10)
    runs(tmp_path / "runs")
    data = json.loads(paths[3].read_text())
    data["records"][1]["test_accuracy"] = 0.125
    paths[3].write_text(json.dumps(data))
    paths[5].unlink()
    write_files(tmp_path / "runs", 1, start=50)
    os.utime(paths[7], ns=(1, 1))  # touched: the same content
    now = runs(tmp_path / "runs")
    assert now == plain(tmp_path / "runs")
    assert len(now) == 10 and paths[5] not in [p for p, _ in now]
    assert dict(now)[paths[3]].records[1].test_accuracy == 0.125
    assert entries(own_index) == 10


@pytest.mark.parametrize(
    "content", [b"", b"\x00garbage\xff" * 500, "other"], ids=["empty", "garbage", "other-db"]
)
def test_a_corrupt_or_foreign_index_is_rebuilt_with_one_warning(tmp_path, own_index, content):
    write_files(tmp_path / "runs", 6)
    own_index.parent.mkdir(parents=True)
    if content == "other":
        with sqlite3.connect(own_index) as db:
            db.execute("CREATE TABLE runs (path TEXT)")
    else:
        own_index.write_bytes(content)
    warnings: list[str] = []
    assert runs(tmp_path / "runs", warn=warnings.append) == plain(tmp_path / "runs")
    rebuilt = f"{own_index}: not a mnist-bench run index (corrupt or another file); rebuilt"
    assert warnings == [rebuilt]
    assert entries(own_index) == 6
    runs(tmp_path / "runs", warn=warnings.append)
    assert len(warnings) == 1


def test_an_index_that_cannot_be_written_means_reading_without_it(tmp_path, monkeypatch):
    write_files(tmp_path / "runs", 5)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(index.INDEX_ENV, str(tmp_path / "a-file" / "index.sqlite"))
    warnings: list[str] = []
    assert runs(tmp_path / "runs", warn=warnings.append) == plain(tmp_path / "runs")
    assert warnings == []


def test_a_read_only_results_folder_is_read_and_indexed(tmp_path, own_index):
    write_files(tmp_path / "runs", 5)
    os.chmod(tmp_path / "runs", 0o555)
    try:
        assert runs(tmp_path / "runs") == runs(tmp_path / "runs") == plain(tmp_path / "runs")
    finally:
        os.chmod(tmp_path / "runs", 0o755)
    assert entries(own_index) == 5
    assert sorted(p.name for p in (tmp_path / "runs").iterdir())[0].endswith(".json")


def test_two_processes_updating_at_once_lose_nothing(tmp_path, own_index):
    write_files(tmp_path / "a", 40)
    write_files(tmp_path / "b", 40, start=40)
    code = (
        "import sys\nfrom mnist_bench.runfile import collect\n"
        "print(len(collect.load_runs(sys.argv[1:])))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "a"), str(tmp_path / "b")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert (proc.returncode, out.strip(), err) == (0, "80", "")
    assert entries(own_index) == 80
    assert runs(tmp_path / "a", tmp_path / "b") == plain(tmp_path / "a", tmp_path / "b")


def test_an_update_killed_mid_transaction_leaves_a_usable_index(tmp_path, own_index):
    write_files(tmp_path / "runs", 30)
    runs(*sorted((tmp_path / "runs").glob("*"))[:10])
    code = (
        "import os, signal, sys\n"
        "from mnist_bench.runfile import index\n"
        "from mnist_bench.runfile import collect\n"
        "def dying(self):\n"
        "    self.db.execute('BEGIN')\n"
        "    self.db.executemany('INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)',"
        " self.pending)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "index.Reader._flush = dying\n"
        "collect.load_runs(sys.argv[1:])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")], capture_output=True, timeout=300
    )
    assert out.returncode == -signal.SIGKILL
    assert entries(own_index) == 10  # the killed transaction left nothing
    warnings: list[str] = []
    assert runs(tmp_path / "runs", warn=warnings.append) == plain(tmp_path / "runs")
    assert warnings == [] and entries(own_index) == 30


def test_bad_files_fail_or_are_skipped_with_the_same_messages(tmp_path, own_index):
    paths = write_files(tmp_path / "runs", 6)
    runs(tmp_path / "runs")  # indexed while good
    paths[2].write_text(paths[2].read_text()[:-40])  # cut short
    (tmp_path / "runs" / "zzz.json").write_text('{"schema_version": 99}')
    with pytest.raises(UserError) as direct:
        load_run(paths[2])
    for reader in (runs, plain):
        with pytest.raises(UserError) as failed:
            reader(tmp_path / "runs")
        assert str(failed.value) == f"{direct.value} (pass --skip-bad to skip bad files)"
    skipped = {}
    for reader in (runs, plain):
        warnings: list[str] = []
        got = reader(tmp_path / "runs", skip_bad=True, warn=warnings.append)
        skipped[reader] = (got, warnings)
    assert skipped[runs] == skipped[plain]
    assert skipped[runs][1][0] == f"skipped {direct.value}"
    assert len(skipped[runs][1]) == 2 and len(skipped[runs][0]) == 5
    assert entries(own_index) == 5  # the bad file is not kept as good


def test_index_command_builds_and_rebuilds(tmp_path, own_index):
    write_files(tmp_path / "runs", 8)
    env = {"MNIST_BENCH_CACHE_DIR": str(own_index.parent)}
    first = run_cli("index", str(tmp_path / "runs"), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"8 run files indexed (8 read, 0 unchanged) in {own_index}\n"
    again = run_cli("index", str(tmp_path / "runs"), env=env)
    assert again.stdout.startswith("8 run files indexed (0 read, 8 unchanged)")
    own_index.write_bytes(b"not a database")
    rebuilt = run_cli("index", "--rebuild", str(tmp_path / "runs"), env=env)
    assert rebuilt.returncode == 0
    assert rebuilt.stdout.startswith("8 run files indexed (8 read, 0 unchanged)")
    assert rebuilt.stderr.count("warning") == 1 and entries(own_index) == 8
    missing = run_cli("index", str(tmp_path / "nowhere"), env=env)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
