"""Shards for CI matrices: one grid split into N shares, the same split in every process.

`mnist-bench run --shard I/N` runs share I. Each of the N processes expands the grid and splits
it on its own, on another machine perhaps, so the split depends on the set of jobs alone: not
on the order the options named them, and not on anything a machine learns (its run history,
which grows as shards finish, or a framework's FLOP count). `grid_digest` names the whole grid,
so `mnist-bench merge` can tell that shard files belong together.

The split: jobs sorted by a stable key, backend first, are cut into N consecutive shares of
nearly equal estimated time (`job_seconds`). Consecutive cuts keep a backend's jobs together:
each backend pays its worker start once per share it reaches, and a grid with as many
backends of equal weight as shares gets one backend per share (suites/ci.toml: 3 x 9 jobs).
Greedy longest-first assignment balances no better on such grids and deals every backend
to every share. A share is within about one job's estimate of the mean. The jobs of one
configuration and seed (the two processes of `--check-determinism`) are never split: they
compare bit for bit on one machine.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Sequence

from mnist_bench.core.config import parse_shard
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.plan import estimate

# One cost per training sample for every variant (`estimate.REFERENCE_FLOPS`): the parent
# cannot count a variant's FLOPs without a framework, and a machine's own history would split
# the same grid differently on another machine.
REFERENCE_FLOPS = estimate.REFERENCE_FLOPS
WORKER_START_SECONDS = estimate.STARTUP_SECONDS


def _encode(value: object) -> bytes:
    import msgspec

    if isinstance(value, Job) and not value.model_digest:  # a planned job, as before digests
        value = {k: v for k, v in dataclasses.asdict(value).items() if k != "model_digest"}
    return msgspec.json.encode(value)


def grid_digest(jobs: Sequence[Job]) -> str:
    """A short SHA-256 over the grid's job keys, in no particular order: equal for every
    shard of one grid, different when any job differs."""
    lines = sorted(_encode(job) for job in jobs)
    return hashlib.sha256(b"\n".join(lines)).hexdigest()[:16]


def job_seconds(job: Job, train_samples: int) -> float:
    """The estimate the split balances: `estimate.job_seconds` at one per-sample cost for
    every variant, over the job's epochs and its share of the `train_samples` training set."""
    samples = min(train_samples, job.settings.train_limit or train_samples)
    seconds, _ = estimate.job_seconds(job, samples, {}, {job.variant: REFERENCE_FLOPS})
    return seconds


def _worker(job: Job) -> tuple:
    """What makes a worker process: jobs that differ here never share one."""
    return (job.backend, job.settings.threads, job.settings.op_determinism)


def _order(job: Job) -> tuple:
    """The stable order the grid is cut in: worker first, then configuration, seed, repeat."""
    threads = -1 if job.settings.threads is None else job.settings.threads
    return (
        job.backend,
        threads,
        job.settings.op_determinism,
        job.dataset,
        job.dataset_digest,
        job.variant,
        job.device,
        _encode(job.settings),
        job.seed,
        job.repeat,
    )


def split(jobs: Sequence[Job], count: int, cost: Callable[[Job], float]) -> list[list[Job]]:
    """`jobs` in `count` consecutive shares of nearly equal `cost`, each in `jobs`' order.

    Raises:
        UserError: fewer configuration-seeds in `jobs` than shares.
    """
    ordered = sorted(jobs, key=_order)
    units = [list(g) for _, g in itertools.groupby(ordered, key=lambda j: j.seed_key)]
    if len(units) < count:
        raise UserError(
            f"{count} shards for a grid of {len(jobs)} job(s): at most {len(units)} shards"
        )
    prefix = [0.0]  # estimated seconds up to each unit, a worker start at each change of worker
    for i, unit in enumerate(units):
        start = WORKER_START_SECONDS if i and _worker(unit[0]) != _worker(units[i - 1][0]) else 0
        prefix.append(prefix[-1] + start + sum(cost(job) for job in unit))
    cuts = [0]
    for k in range(1, count):
        target = prefix[-1] * k / count
        low, high = cuts[-1] + 1, len(units) - (count - k)  # one unit at least for each share
        at = bisect.bisect_left(prefix, target, low, high + 1)
        near = [b for b in (at - 1, at) if low <= b <= high]
        cuts.append(min(near, key=lambda b: (abs(prefix[b] - target), b)))
    cuts.append(len(units))
    position = {job.key: i for i, job in enumerate(jobs)}
    shares = []
    for a, b in itertools.pairwise(cuts):
        share = [job for unit in units[a:b] for job in unit]
        shares.append(sorted(share, key=lambda job: position[job.key]))
    return shares


def plan(jobs: Sequence[Job], count: int, train_samples: int) -> list[list[Job]]:
    """The `count` shares of the grid `jobs`, balanced by `job_seconds`."""
    return split(jobs, count, lambda job: job_seconds(job, train_samples))


def share(jobs: Sequence[Job], shard: str, train_samples: int) -> list[Job]:
    """The jobs of `shard` ("I/N") of the grid `jobs`, in the grid's order.

    Raises:
        UserError: a bad shard, or more shards than the grid can fill.
    """
    index, count = parse_shard(shard)
    try:
        return plan(jobs, count, train_samples)[index - 1]
    except UserError as exc:
        raise UserError(f"shard {shard}: {exc}") from None
