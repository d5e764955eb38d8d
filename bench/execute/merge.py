"""The run files of a sharded run (`run --shard I/N`) joined into one (`mnist_bench.merge`,
`mnist-bench merge`).

The shards must be of one grid (the same `grid_digest` and shard count). Merge names every
shard that is missing or given twice, and every job that is missing (its shard stopped early, or
never came) or doubled (two shards planned or recorded it). Each shard file lists its share of
the grid (`RunFile.shard_jobs`), so a job is known missing even when its shard's records are not
there; a missing shard's jobs are named where this machine expands the grid the same way.

The merged file is an ordinary run file: `report`, `compare`, `check` and `run --resume` read
it. Its environment is the first shard's, with every shard's backends and GPUs; each shard's own
block is kept in `merged_from`. Where the shards ran on different machines, each record also
names its machine (`Record.machine`), so that `report --group-by machine` keeps them apart.

Exit codes: 0 merged; 1 a shard or job is missing (nothing written, unless `--allow-missing`:
then the file is written `interrupted`, its missing jobs `pending`, for `run --resume`); 2 bad
input: files of different grids, a shard or job doubled, an output that exists.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.core.config import parse_shard
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.runfile import machine
from mnist_bench.runfile.records import (
    SCHEMA_VERSION,
    Machine,
    Record,
    RunFile,
    ShardOrigin,
    load_run,
)

if TYPE_CHECKING:
    import pandas

# Configuration fields that may differ between the shards of one grid.
_LOCAL_FIELDS = ("shard", "results_dir", "suite", "data")


@dataclass
class Shard:
    path: Path
    run: RunFile
    index: int
    count: int


@dataclass
class Merged:
    """The merged run, and what is missing from it (one line each).

    Attributes:
        run: the merged run file.
        missing: each shard or job missing, a line each.
        path: where it was written; None when it was not.
    """

    run: RunFile
    missing: list[str] = field(default_factory=list)
    path: Path | None = None

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame, one row per record of the merged run, with every metric.

        Raises:
            UserError: pandas is not installed.
        """
        from mnist_bench.runfile.frame import data_frame, record_row

        return data_frame(record_row(r, self.run.run_id) for r in self.run.records)


def load_shards(paths: Sequence[str | Path]) -> list[Shard]:
    """Read the shard files under `paths` (files, or folders searched for *.json), checked to
    be shards of one grid, ordered by shard.

    Raises:
        UserError: a bad file, a file that is no shard, shards of different grids or shard
            counts, or one shard given twice.
    """
    from mnist_bench.runfile.collect import run_files

    shards = []
    for path in run_files(paths):
        run = load_run(path)
        if run.shard is None or not run.grid_digest:
            raise UserError(f"{path}: not a shard's run file (it was not made with --shard)")
        shards.append(Shard(path, run, *parse_shard(run.shard)))
    first = shards[0]
    for shard in shards[1:]:
        if shard.run.grid_digest != first.run.grid_digest:
            raise UserError(
                f"{shard.path}: a shard of another grid (digest {shard.run.grid_digest}) than "
                f"{first.path} ({first.run.grid_digest})"
            )
        if shard.count != first.count:
            raise UserError(
                f"{shard.path}: shard {shard.run.shard}, but {first.path} is shard "
                f"{first.run.shard}: one grid, one shard count"
            )
        if differs := _config_difference(first.run.config, shard.run.config):
            raise UserError(f"{shard.path}: its {differs} differs from {first.path}'s")
    by_index: dict[int, list[Shard]] = {}
    for shard in shards:
        by_index.setdefault(shard.index, []).append(shard)
    for index, same in sorted(by_index.items()):
        if len(same) > 1:
            names = ", ".join(str(s.path) for s in same)
            raise UserError(f"shard {index}/{first.count} doubled: {names}")
    return sorted(shards, key=lambda s: s.index)


def _config_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first configuration field (beyond where files and data lie) that differs."""
    for name in sorted(set(a) | set(b)):
        if name not in _LOCAL_FIELDS and a.get(name) != b.get(name):
            return name
    return None


def merge(paths: Sequence[str | Path]) -> Merged:
    """Join the shard files under `paths` into one run (not written), with what is missing.

    Raises:
        UserError: as `load_shards`; a job planned or recorded twice; shares that do not make
            up their grid.
    """
    from mnist_bench.execute import runner
    from mnist_bench.plan import shards
    from mnist_bench.runfile import storage
    from mnist_bench.runfile.machine import machine_label

    present = load_shards(paths)
    count, digest = present[0].count, present[0].run.grid_digest
    planned: dict[tuple, Shard] = {}
    for shard in present:
        for job in shard.run.shard_jobs:
            if job.key in planned:
                raise UserError(
                    f"job {job.label()} doubled: planned by shard {planned[job.key].run.shard} "
                    f"({planned[job.key].path}) and shard {shard.run.shard} ({shard.path})"
                )
            planned[job.key] = shard
    missing = []
    seen: dict[tuple, Shard] = {}
    for shard in present:
        for record in shard.run.records:
            if planned.get(record.key) is not shard:
                raise UserError(
                    f"{shard.path}: records job {record.job.label()}, which is not in shard "
                    f"{shard.run.shard}'s share"
                )
            if record.slot in seen:
                raise UserError(f"job {record.job.label()} doubled: recorded twice in {shard.path}")
            seen[record.slot] = shard
        done = {record.key for record in shard.run.records}
        for job in shard.run.shard_jobs:
            if job.key not in done:
                missing.append(f"job {job.label()} missing: shard {shard.run.shard} "
                               f"({shard.path}) is {shard.run.status}")  # fmt: skip
    absent = sorted(set(range(1, count + 1)) - {s.index for s in present})
    recorded = {slot[0] for slot in seen}
    pending = [job for s in present for job in s.run.shard_jobs if job.key not in recorded]
    if absent:
        grid = _grid(present[0], digest)
        lost = [] if grid is None else [job for job in grid if job.key not in planned]
        for index in absent:
            missing.append(f"shard {index}/{count} missing")
        if grid is None:
            missing.append("the missing shards' jobs are unknown here (this machine expands "
                           "the grid differently)")  # fmt: skip
        for job in lost:
            missing.append(f"job {job.label()} missing: its shard is missing")
        pending += lost
    elif shards.grid_digest([job for s in present for job in s.run.shard_jobs]) != digest:
        raise UserError(
            f"the shards' shares do not make up their grid {digest}: made by different "
            "versions of mnist-bench?"
        )
    first = present[0].run
    several = len({machine_label(s.run.environment) for s in present}) > 1
    records = [_attributed(r, s, several) for s in present for r in s.run.records]
    finished = [s.run.finished_utc for s in present if s.run.finished_utc]
    run = RunFile(
        run_id=storage.new_run_id(),
        started_utc=min(s.run.started_utc for s in present),
        config={**first.config, "shard": None},
        environment=_environment(present),
        records=records,
        aggregates=runner.aggregate(records),
        determinism_cost=runner.determinism_cost(records),  # pairs a split may have parted
        status="interrupted" if missing else "complete",
        finished_utc=max(finished) if finished else storage.utc_now(),
        pending=pending,
        stop_reason=f"merged without {_count_missing(absent, count, pending)}" if missing else None,
        grid_digest=digest,
        merged_from=[
            ShardOrigin(
                s.run.shard or "",
                s.run.run_id,
                s.run.started_utc,
                s.run.finished_utc,
                s.run.status,
                s.run.environment,
            )
            for s in present
        ],
        schema_version=SCHEMA_VERSION,
    )
    return Merged(run, missing)


def _count_missing(absent: list[int], count: int, pending: list[Job]) -> str:
    parts = [f"shard {i}/{count}" for i in absent]
    if pending:
        parts.append(f"{len(pending)} job(s)")
    return ", ".join(parts)


def _grid(shard: Shard, digest: str | None) -> list[Job] | None:
    """The whole grid, expanded here from a shard's configuration, or None where that does not
    give the grid the shards were cut from (another set of installed backends, variants)."""
    from mnist_bench.core.config import RunConfig
    from mnist_bench.execute import runner
    from mnist_bench.plan import shards

    jobs = shard.run.shard_jobs
    if not jobs:
        return None
    try:
        config = RunConfig.from_dict({**shard.run.config, "shard": None})
        grid = runner.expand_jobs(config, jobs[0].dataset, jobs[0].dataset_digest)
    except (UserError, TypeError, ValueError):
        return None
    return grid if shards.grid_digest(grid) == digest else None


def _environment(present: list[Shard]) -> dict[str, Any]:
    """The first shard's environment, with every shard's backends and GPUs."""
    env = copy.deepcopy(present[0].run.environment)
    for shard in present[1:]:
        other = shard.run.environment
        if isinstance(env.get("backends"), dict) and isinstance(other.get("backends"), dict):
            for name, info in other["backends"].items():
                env["backends"].setdefault(name, info)
        if isinstance(env.get("gpus"), list) and isinstance(other.get("gpus"), list):
            env["gpus"] += [g for g in other["gpus"] if g not in env["gpus"]]
    return env


def _attributed(record: Record, shard: Shard, several: bool) -> Record:
    """`record`, naming the machine of its shard where the shards ran on `several` machines."""
    if several and record.machine is None:
        record.machine = machine_of(shard.run.environment)
    return record


def machine_of(env: dict[str, Any]) -> Machine:
    """A run's machine, from its environment block, as a record's `Machine`."""
    return machine.node_machine(env)
