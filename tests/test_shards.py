"""Shards for CI matrices: `run --shard I/N` splits a grid the same way in every process, and
`merge` joins the shards' run files, naming what is missing or doubled."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import (
    BACKEND,
    FRAMEWORKS,
    ROOT,
    cli_importing_none_of,
    make_record,
    needs_backend,
    run_cli,
)
from mnist_bench import cli
from mnist_bench.commands import report as report_cmd
from mnist_bench.core.config import RunConfig, TrainSettings
from mnist_bench.core.identity import Job, dataset_digest
from mnist_bench.execute import runner
from mnist_bench.plan import shards, suite
from mnist_bench.runfile import storage
from mnist_bench.runfile.records import SCHEMA_VERSION, RunFile, load_run

FULL = 60_000  # MNIST's training set


def keys(jobs) -> list[tuple]:
    return [job.key for job in jobs]


# ------------------------------------------------------------------------------------ split
def test_three_shards_of_the_ci_suite_cover_its_grid_exactly_once(mnist):
    config = suite.load(ROOT / "suites" / "ci.toml")
    grid = runner.expand_jobs(config, mnist.name, dataset_digest(mnist.digests))
    assert len(grid) == 27
    shares = [shards.share(grid, f"{i}/3", len(mnist.x_train)) for i in (1, 2, 3)]
    everything = [key for share in shares for key in keys(share)]
    assert sorted(map(repr, everything)) == sorted(map(repr, keys(grid)))  # once each
    assert len(set(everything)) == len(everything)
    seconds = [sum(shards.job_seconds(j, FULL) for j in share) for share in shares]
    largest = max(shards.job_seconds(j, FULL) for j in grid)
    assert max(seconds) - min(seconds) <= largest, seconds
    # three backends of equal weight: one each, so each shard starts one worker
    assert sorted(len({j.backend for j in share}) for share in shares) == [1, 1, 1]
    # each share keeps the grid's order
    position = {j.key: i for i, j in enumerate(grid)}
    for share in shares:
        assert [position[j.key] for j in share] == sorted(position[j.key] for j in share)


def test_the_split_depends_on_the_set_of_jobs_only(mnist):
    config = suite.load(ROOT / "suites" / "ci.toml")
    grid = runner.expand_jobs(config, mnist.name, "d")
    shuffled = list(grid)
    random.Random(7).shuffle(shuffled)
    for count in (2, 3, 4, 7):
        a = [set(keys(s)) for s in shards.plan(grid, count, FULL)]
        b = [set(keys(s)) for s in shards.plan(shuffled, count, FULL)]
        assert a == b
    assert shards.grid_digest(grid) == shards.grid_digest(shuffled)
    other = runner.expand_jobs(RunConfig(**{**config.to_dict(), "epochs": 3}), mnist.name, "d")
    assert shards.grid_digest(other) != shards.grid_digest(grid)


def job(variant: str = "two-dense", backend: str = "jax", seed: int = 0, **settings) -> Job:
    return Job(variant, backend, "cpu", seed, TrainSettings(**settings))


def test_cuts_fall_nearest_the_equal_shares_by_hand():
    # one backend, costs 4, 1, 1, 1, 1 in the stable order (seed order): total 8, targets 4
    jobs = [job(seed=s) for s in range(5)]
    cost = {0: 4.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    shares = shards.split(jobs, 2, lambda j: cost[j.seed])
    assert [[j.seed for j in s] for s in shares] == [[0], [1, 2, 3, 4]]
    # three shares of 1..6 (total 21, targets 7 and 14): prefix sums 1 3 6 10 15 21 -> 6, 15
    jobs = [job(seed=s) for s in range(1, 7)]
    shares = shards.split(jobs, 3, lambda j: float(j.seed))
    assert [[j.seed for j in s] for s in shares] == [[1, 2, 3], [4, 5], [6]]


def test_a_change_of_worker_costs_a_worker_start():
    # the torch job pays a worker start, so the cut falls before it, not after two jax jobs
    jobs = [job(backend="jax", seed=s) for s in range(3)] + [job(backend="torch", seed=0)]
    cost = {"jax": 1.0, "torch": 1.0}
    shares = shards.split(jobs, 2, lambda j: cost[j.backend])
    # prefix with a worker start (5 s) before torch: 1 2 3 9 -> target 4.5: cut after 3 jax
    assert [[j.backend for j in s] for s in shares] == [["jax"] * 3, ["torch"]]


def test_determinism_repeats_stay_on_one_shard():
    config = RunConfig(
        variants=("two-dense",), backends=("jax", "torch"), seeds=(0, 1, 2), check_determinism=True
    )
    grid = runner.expand_jobs(config)
    assert any(j.repeat for j in grid)
    for count in (2, 3, 5):
        for share in shards.plan(grid, count, FULL):
            seeds = {j.seed_key for j in share}
            assert set(keys(share)) == {j.key for j in grid if j.seed_key in seeds}


def test_more_shards_than_the_grid_holds_is_refused():
    grid = [job(seed=s) for s in range(3)]
    with pytest.raises(Exception, match="shard 1/4: .*at most 3 shards"):
        shards.share(grid, "1/4", FULL)


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("0/3", "I must be 1..3"),
        ("4/3", "I must be 1..3"),
        ("a/b", "shard must be I/N"),
        ("1/0", "shard count must be 1..10000"),
        ("2", "shard must be I/N"),
    ],
)
def test_a_bad_shard_is_one_line_exit_2(tmp_path, shard, message):
    out = run_cli("run", "--shard", shard, "-b", BACKEND, "--results-dir", str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not list(tmp_path.iterdir())


def test_shard_in_a_suite_and_with_resume(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('variants = ["two-dense"]\nshard = "4/3"\n')
    with pytest.raises(Exception, match=r"bad.toml:2: shard '4/3'"):
        suite.load(bad)
    good = tmp_path / "good.toml"
    good.write_text('variants = ["two-dense"]\nbackends = ["jax"]\nshard = "1/1"\n')
    assert suite.load(good).shard == "1/1"
    assert suite.load(good, overrides={"shard": " 2/ 3"}).shard == "2/3"
    out = run_cli("run", "--resume", str(tmp_path / "x.json"), "--shard", "1/2")
    assert out.returncode == 2 and "drop --shard" in out.stderr, out.stderr
    out = run_cli(
        "run",
        "--shard",
        "1/3",
        "-b",
        "jax",
        "-v",
        "two-dense",
        "--results-dir",
        str(tmp_path / "runs"),
    )
    assert out.returncode == 2 and "at most 1 shards" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------------------------ merge
CONFIG = RunConfig(
    variants=("single-dense", "two-dense"),
    backends=("jax",),
    seeds=(0, 1),
    epochs=1,
    train_limit=1000,
    test_limit=300,
)
ENV = {"machine_id": "aaaaaa", "cpu": {"model": "Test CPU A", "logical_cores": 2}, "gpus": []}


def write_shards(folder: Path, count: int = 2, *, env=None, drop=(), config=CONFIG) -> list[Path]:
    """Shard files of `config`'s grid as `run --shard` writes them, records made up (no
    training); `drop`: (shard index, seed) pairs whose record is left out, that shard
    interrupted."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = runner.expand_jobs(config, "mnist", "digest")
    digest = shards.grid_digest(grid)
    paths = []
    for i, share in enumerate(shards.plan(grid, count, FULL), 1):
        kept = [j for j in share if (i, j.seed) not in drop]
        records = [
            make_record(
                j.variant,
                j.backend,
                seed=j.seed,
                requested=j.device,
                digest="digest",
                test_accuracy=0.9,
                **j.settings.to_dict(),
            )
            for j in kept
        ]
        shard = f"{i}/{count}"
        run = RunFile(
            run_id=storage.new_run_id() + f"-{i}",
            started_utc=storage.utc_now(),
            config=RunConfig(**{**config.to_dict(), "shard": shard}).to_dict(),
            environment=(env or {}).get(i, ENV),
            records=records,
            status="complete" if len(kept) == len(share) else "interrupted",
            pending=[j for j in share if j not in kept],
            grid_digest=digest,
            shard=shard,
            shard_jobs=share,
            schema_version=SCHEMA_VERSION,
        )
        path = folder / f"shard-{i}.json"
        storage.write_json(path, run.to_dict())
        paths.append(path)
    return paths


def merge_cli(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["merge", *args])
    return code, capsys.readouterr().err


def test_merge_joins_every_job_once(tmp_path, capsys):
    paths = write_shards(tmp_path / "shards", 2)
    code, err = merge_cli(capsys, str(tmp_path / "shards"), "-o", str(tmp_path / "m.json"))
    assert code == 0, err
    merged = load_run(tmp_path / "m.json")
    grid = runner.expand_jobs(CONFIG, "mnist", "digest")
    assert sorted(map(repr, keys(r.job for r in merged.records))) == sorted(map(repr, keys(grid)))
    assert merged.status == "complete" and not merged.pending and merged.shard is None
    assert merged.grid_digest == shards.grid_digest(grid)
    assert [o.shard for o in merged.merged_from] == ["1/2", "2/2"]
    assert [o.run_id for o in merged.merged_from] == [load_run(p).run_id for p in paths]
    assert merged.config["shard"] is None
    assert {a["variant"] for a in merged.aggregates} == {"single-dense", "two-dense"}
    assert all(r.machine is None for r in merged.records)  # one machine: the run's block says
    report = report_cmd.build([str(tmp_path / "m.json")], by=("variant", "backend", "device"))
    assert [(row.variant, len(row.records)) for row in report.rows] == [
        ("single-dense", 2),
        ("two-dense", 2),
    ]


def test_three_ci_shards_merge_into_one_report_with_no_gap(tmp_path, capsys):
    ci = suite.load(ROOT / "suites" / "ci.toml")
    write_shards(tmp_path / "shards", 3, config=ci)
    code, err = merge_cli(capsys, str(tmp_path / "shards"), "-o", str(tmp_path / "ci.json"))
    assert code == 0, err
    assert load_run(tmp_path / "ci.json").status == "complete"
    for paths in ([str(tmp_path / "ci.json")], [str(tmp_path / "shards")]):
        report = report_cmd.build(paths, by=("variant", "backend", "device"))
        assert len(report.rows) == 9  # 3 variants x 3 backends
        assert all(sorted(r.seed for r in row.records) == [0, 1, 2] for row in report.rows)


def test_merge_imports_no_framework(tmp_path):
    write_shards(tmp_path / "shards", 2)
    banned = (*FRAMEWORKS, "matplotlib", "ray")
    cli_importing_none_of(banned, "merge", str(tmp_path / "shards"), "-o", str(tmp_path / "m.json"))
    assert load_run(tmp_path / "m.json").status == "complete"


def test_merge_names_a_missing_shard_and_its_jobs(tmp_path, capsys):
    three_seeds = RunConfig(**{**CONFIG.to_dict(), "seeds": (0, 1, 2)})
    paths = write_shards(tmp_path / "shards", 3, config=three_seeds)
    out = tmp_path / "m.json"
    code, err = merge_cli(capsys, str(paths[0]), str(paths[2]), "-o", str(out))
    assert code == 1 and not out.exists(), err
    assert "shard 2/3 missing" in err and "nothing written" in err
    missing = {j.label() for j in load_run(paths[1]).shard_jobs}
    assert missing and all(f"job {label} missing" in err for label in missing), err
    code, err = merge_cli(capsys, str(paths[0]), str(paths[2]), "-o", str(out), "--allow-missing")
    assert code == 0, err
    merged = load_run(out)
    assert merged.status == "interrupted" and "shard 2/3" in (merged.stop_reason or "")
    assert {j.label() for j in merged.pending} == missing


def test_merge_names_a_job_an_interrupted_shard_left(tmp_path, capsys):
    paths = write_shards(tmp_path / "shards", 2, drop={(2, 1)})
    code, err = merge_cli(capsys, *map(str, paths), "-o", str(tmp_path / "m.json"))
    assert code == 1, err
    assert "job jax · two-dense · seed 1 missing: shard 2/2" in err and "interrupted" in err


def test_merge_refuses_a_doubled_shard_or_job(tmp_path, capsys):
    paths = write_shards(tmp_path / "shards", 2)
    copy = tmp_path / "copy.json"
    shutil.copy(paths[0], copy)
    code, err = merge_cli(capsys, *map(str, paths), str(copy), "-o", str(tmp_path / "m.json"))
    assert code == 2 and "shard 1/2 doubled" in err and str(copy) in err, err
    # shard 2 planned (and ran) one of shard 1's jobs as well
    data = json.loads(paths[1].read_text())
    first = json.loads(paths[0].read_text())
    data["shard_jobs"].append(first["shard_jobs"][0])
    data["records"].append(first["records"][0])
    paths[1].write_text(json.dumps(data))
    code, err = merge_cli(capsys, *map(str, paths), "-o", str(tmp_path / "m.json"))
    assert code == 2 and "doubled: planned by shard 1/2" in err, err
    assert not (tmp_path / "m.json").exists()


def test_merge_refuses_shards_of_other_grids(tmp_path, capsys):
    a = write_shards(tmp_path / "a", 2)
    b = write_shards(tmp_path / "b", 2, config=RunConfig(**{**CONFIG.to_dict(), "epochs": 2}))
    code, err = merge_cli(capsys, str(a[0]), str(b[1]), "-o", str(tmp_path / "m.json"))
    assert code == 2 and "a shard of another grid" in err, err
    c = write_shards(tmp_path / "c", 3)
    code, err = merge_cli(capsys, str(a[0]), str(c[1]), "-o", str(tmp_path / "m.json"))
    assert code == 2 and "one shard count" in err, err
    plain = tmp_path / "plain.json"
    data = json.loads(a[0].read_text())
    data["shard"] = None
    plain.write_text(json.dumps(data))
    code, err = merge_cli(capsys, str(plain), "-o", str(tmp_path / "m.json"))
    assert code == 2 and "not a shard's run file" in err, err


def test_merge_never_writes_over_a_file(tmp_path, capsys):
    paths = write_shards(tmp_path / "shards", 2)
    mine = tmp_path / "mine.json"
    mine.write_text("keep me")
    code, err = merge_cli(capsys, *map(str, paths), "-o", str(mine))
    assert code == 2 and "exists" in err and mine.read_text() == "keep me", err
    code, err = merge_cli(capsys, *map(str, paths), "-o", str(paths[0]))
    assert code == 2 and "exists" in err, err
    code, err = merge_cli(capsys, *map(str, paths), "-o", str(tmp_path / "m.txt"))
    assert code == 2 and ".json" in err, err
    assert len(err.strip().splitlines()) == 1


def test_records_of_several_machines_name_their_machine(tmp_path, capsys):
    other = {
        "machine_id": "bbbbbb",
        "cpu": {"model": "Test CPU B", "logical_cores": 4},
        "gpus": [],
        "memory_gib": 8.0,
    }
    write_shards(tmp_path / "shards", 2, env={2: other})
    code, err = merge_cli(capsys, str(tmp_path / "shards"), "-o", str(tmp_path / "m.json"))
    assert code == 0, err
    merged = load_run(tmp_path / "m.json")
    by_variant = {r.variant: r.machine for r in merged.records}
    assert {m.cpu for m in by_variant.values()} == {"Test CPU A", "Test CPU B"}
    assert {m.machine_id for m in by_variant.values()} == {"aaaaaa", "bbbbbb"}
    assert merged.merged_from[1].environment["cpu"]["model"] == "Test CPU B"
    report = report_cmd.build([str(tmp_path / "m.json")], by=("variant", "machine"))
    assert len({row.machine for row in report.rows}) == 2


# ------------------------------------------------------------------------------- end to end
SMALL = (
    "-b",
    BACKEND,
    "-v",
    "single-dense,two-dense",
    "--seeds",
    "0,1",
    "--epochs",
    "1",
    "--train-limit",
    "1000",
    "--test-limit",
    "300",
)


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory) -> list[Path]:
    """Two real shards of a tiny grid, each run as its own `mnist-bench run --shard`."""
    folder = tmp_path_factory.mktemp("shards")
    paths = []
    for i in (1, 2):
        before = set(folder.glob("*.json"))
        out = run_cli(
            "run", *SMALL, "--shard", f"{i}/2", "--no-figures", "--results-dir", str(folder)
        )
        assert out.returncode == 0, out.stderr[-3000:]
        (path,) = set(folder.glob("*.json")) - before
        paths.append(path)
    return paths


@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
@needs_backend
def test_real_shards_merge_into_one_run_with_no_gap(shard_files, tmp_path):
    runs = [load_run(p) for p in shard_files]
    assert [r.shard for r in runs] == ["1/2", "2/2"]
    assert runs[0].grid_digest == runs[1].grid_digest
    for run in runs:
        assert run.status == "complete" and keys(r.job for r in run.records) == keys(run.shard_jobs)
    out = run_cli("merge", *map(str, shard_files), "-o", str(tmp_path / "merged.json"))
    assert out.returncode == 0, out.stderr
    merged = load_run(tmp_path / "merged.json")
    assert len(merged.records) == 4 and merged.status == "complete"
    assert {(r.variant, r.seed) for r in merged.records} == {
        (v, s) for v in ("single-dense", "two-dense") for s in (0, 1)
    }
    assert all(r.status == "ok" for r in merged.records)
    for paths in ([str(tmp_path / "merged.json")], [str(p) for p in shard_files]):
        out = run_cli("report", *paths, "--format", "csv")
        assert out.returncode == 0, out.stderr
        report = report_cmd.build(paths, by=("variant", "backend", "device"))
        assert [(row.variant, sorted(r.seed for r in row.records)) for row in report.rows] == [
            ("single-dense", [0, 1]),
            ("two-dense", [0, 1]),
        ]
        assert all(row.status.startswith("ok") for row in report.rows)
    # a missing shard and a doubled one are named
    out = run_cli("merge", str(shard_files[1]), "-o", str(tmp_path / "partial.json"))
    assert out.returncode == 1 and "shard 1/2 missing" in out.stderr, out.stderr
    copy = tmp_path / "again.json"
    shutil.copy(shard_files[1], copy)
    out = run_cli("merge", *map(str, shard_files), str(copy), "-o", str(tmp_path / "x.json"))
    assert out.returncode == 2 and "shard 2/2 doubled" in out.stderr, out.stderr


@pytest.mark.slow
@needs_backend
def test_a_partial_merge_resumes_into_the_whole_grid(shard_files, tmp_path):
    partial = tmp_path / "partial.json"
    out = run_cli("merge", str(shard_files[0]), "-o", str(partial), "--allow-missing")
    assert out.returncode == 0, out.stderr
    assert len(load_run(partial).pending) == 2
    out = run_cli("run", "--resume", str(partial))
    assert out.returncode == 0, out.stderr[-3000:]
    whole = load_run(partial)
    assert whole.status == "complete" and len(whole.records) == 4 and not whole.pending
