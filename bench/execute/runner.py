"""Runs a configuration: jobs -> one worker per backend -> records, saved as each one lands.

The parent never imports a framework. Each record is appended to the run file's journal as it
lands, and the journal folded into the run file when the run stops (`journal`), so an
interrupt, a crash or a full disk loses nothing already measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
from collections.abc import Iterable, Iterator, Sized
from operator import attrgetter
from pathlib import Path
from typing import Any

from mnist_bench import data, models
from mnist_bench.core import environment, identity, stats
from mnist_bench.core.config import BACKENDS, PROCESS_SETTINGS, RunConfig, check_job_count
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job, WorkerRequest, dataset_digest
from mnist_bench.core.metrics import HEADLINE
from mnist_bench.execute import launcher, peak
from mnist_bench.plan import shards, variants
from mnist_bench.runfile import journal, storage
from mnist_bench.runfile.machine import Environment
from mnist_bench.runfile.records import (
    SCHEMA_VERSION,
    DeterminismCost,
    Record,
    RunFile,
    load_run,
    make_writable,
)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived mid-run; `signum` tells which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_signalled: list[int] = []  # signals received; once one has, any later one exits at once


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within: the first SIGINT or SIGTERM raises `Interrupted` (so the run file can be marked),
    any later one kills the workers and exits at once, up to the end of the process. Where no
    signal came, the previous handlers come back after."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    if not _signalled:
        for sig in SIGNALS:
            signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        if not _signalled:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def forget_signals() -> None:
    """Forget the signals received, so that `interruptible` catches the next one again (for a
    process that lives on after a run: a notebook kernel, `mnist_bench.run`)."""
    _signalled.clear()


def exit_at_once_on_signal() -> None:
    """From now on, SIGINT or SIGTERM kills the workers and exits (128 + the signal number)."""
    for sig in SIGNALS:
        signal.signal(sig, _exit_now)


def _interrupt(signum: int, frame: object) -> None:
    _signalled.append(signum)
    exit_at_once_on_signal()
    raise Interrupted(signum)


def _exit_now(signum: int, frame: object) -> None:
    launcher.kill_all()
    os._exit(128 + signum)


def validate_backends(requested: Iterable[str]) -> list[str]:
    requested = list(requested)
    for name in requested:
        if name not in BACKENDS:
            raise UserError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return requested or environment.installed_backends()


def expand_jobs(config: RunConfig, dataset: str = "mnist", digest: str = "") -> list[Job]:
    """Every job of `config`, in the order they run: backend, repeat, variant, grid point,
    device, seed. `dataset` and `digest` name the data they train on.

    Raises:
        UserError: an unknown variant, no backend installed, two jobs that are one, or more
            than `config.MAX_JOBS` jobs.
    """
    backends = validate_backends(config.backends)
    if not backends:
        raise UserError(
            "no backend installed: pip install 'mnist-bench[all]' (or [tensorflow], [jax], [torch])"
        )
    chosen = resolve_variants(config, backends[0])
    # (repeat, op determinism): --check-determinism trains each job twice with the switches
    # on, and once more with them off for what they cost (`determinism_cost`).
    passes = ((0, False), (0, True), (1, True)) if config.check_determinism else ((0, None),)
    lists: dict[str, Sized]
    lists = {"variants": chosen, "backends": backends, "devices": config.devices}
    lists.update({"seeds": config.seeds, "grid points": config.grid, "passes": passes})
    check_job_count({name: len(items) for name, items in lists.items()})
    jobs: dict[tuple, Job] = {}
    for backend in backends:
        for repeat, deterministic in passes:
            for variant in chosen:
                for point in config.grid:
                    settings = config.settings_for(variant.defaults, point)
                    if deterministic is not None:
                        settings = dataclasses.replace(settings, op_determinism=deterministic)
                    for device in config.devices:
                        for seed in config.seeds:
                            job = Job(
                                variant.name, backend, device, seed, settings, dataset, digest,
                                repeat,
                            )  # fmt: skip
                            if job.key in jobs:
                                raise UserError(
                                    f"two grid points give the same job ({job.label()}, "
                                    f"{settings}): an option overrides what the grid varies?"
                                )
                            jobs[job.key] = job
    return list(jobs.values())


def resolve_variants(config: RunConfig, backend: str | None = None) -> list[variants.Resolved]:
    """The variants `config` names (default: the seed notebook's three; `all`: every built-in
    one), each checked by loading it in a child process where it is not built in.

    Raises:
        UserError: an unknown variant, a missing file, module or function.
    """
    names = config.variants or models.default_names()
    if "all" in names:
        names = [*models.names(), *(n for n in names if n != "all")]
    return variants.resolve(dict.fromkeys(names), backend)


def planned_jobs(config: RunConfig, dataset: data.Dataset) -> tuple[list[Job], str]:
    """The jobs a run of `config` does on `dataset` (its shard's share, or the whole grid) and
    the whole grid's digest (`shards`).

    Raises:
        UserError: as `expand_jobs`, or more shards than the grid can fill.
    """
    jobs = expand_jobs(config, dataset.name, dataset_digest(dataset.digests))
    digest = shards.grid_digest(jobs)
    if config.shard:
        jobs = shards.share(jobs, config.shard, len(dataset.x_train))
    return jobs, digest


class Run:
    """One run in progress: its file on disk and the jobs it still has to do."""

    def __init__(self, config: RunConfig, run: RunFile, path: Path, dataset: data.Dataset):
        self.config, self.file, self.path, self.dataset = config, run, path, dataset
        done = {r.key for r in run.records}
        jobs, _ = planned_jobs(config, dataset)
        self.all_jobs = jobs  # `--on-every-node` runs each on every node
        self.pending = [j for j in jobs if j.key not in done]
        self.peak_gflops = peak.peak_gflops()
        self.executor = None  # None: worker processes here; else one with `records(run, obs)`

    @classmethod
    def start(cls, config: RunConfig, argv: list[str] | None = None) -> Run:
        """Validate everything a user can get wrong, then create the run file."""
        expand_jobs(config)
        dataset = data.load(config.data)
        folder = storage.ensure_dir(config.results_path)
        env = environment.collect(dataset.digests, argv)
        env["dataset"] = {
            "name": dataset.name,
            "source": dataset.source,
            "class_names": list(dataset.class_names),
        }
        jobs, digest = planned_jobs(config, dataset)
        run = RunFile(
            run_id=storage.new_run_id(),
            started_utc=storage.utc_now(),
            config=config.to_dict(),
            environment=env,
            grid_digest=digest,
            shard=config.shard,
            shard_jobs=jobs if config.shard else [],
            schema_version=SCHEMA_VERSION,
        )
        path = storage.reserve_run_path(folder, run.run_id, run.to_dict())
        return cls(config, run, path, dataset)

    @classmethod
    def resume(cls, path: str | Path) -> Run:
        """Reopen an interrupted (or killed) run to do only what it is missing; its file says
        `running` again, with its journal's records folded in."""
        path = Path(path)
        run = load_run(path)
        if run.status == "complete":
            raise UserError(f"{path}: run is already complete; nothing to resume")
        try:
            config = RunConfig.from_dict(run.config)
            expand_jobs(config)
        except UserError as exc:
            raise UserError(f"{path}: its configuration is not valid: {exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise UserError(f"{path}: its configuration is not valid ({exc})") from None
        dataset = data.load(config.data)
        digests = Environment.of(run.environment).dataset_digests
        if digests and digests != dataset.digests:
            raise UserError(f"{path}: the dataset {config.data!r} is not the one this run used")
        storage.ensure_dir(path.parent)
        run.status, run.pending, run.stop_reason = "running", [], None
        resumed = cls(config, run, path, dataset)
        resumed.save()
        return resumed

    def save(self) -> None:
        """Write the whole run file atomically, the journal's records folded in."""
        journal.fold(self.path, self.file.to_dict())

    def execute(self, observer: launcher.Observer) -> RunFile:
        """Run every pending job, each record journaled as it lands. On `Interrupted`, or a
        save that failed (a `UserError`: disk full), mark the file interrupted with why and
        re-raise; the error then names the `--resume` that finishes the run."""
        self.file.status = "running"
        self.file.pending = []
        self.file.stop_reason = None
        self.journal = journal.Journal(self.path, self.file.environment)  # the file says running
        try:
            if self.executor is None:
                for jobs in worker_groups(self.pending):
                    with contextlib.closing(self._run_group(jobs, observer)) as records:
                        for record in records:
                            self._add(record)
            else:  # another executor (`ray_executor`): records as they land, from anywhere
                stream = self.executor.records(self, _GpuNoting(observer, self.file))
                with contextlib.closing(stream) as records:
                    for record in records:
                        self._add(record)
        except (Interrupted, UserError) as exc:
            done = {r.key for r in self.file.records}
            self.file.status = "interrupted"
            self.file.pending = [j for j in self.pending if j.key not in done]
            self.file.finished_utc = storage.utc_now()
            if isinstance(exc, Interrupted):
                self.file.stop_reason = f"interrupted by {signal.Signals(exc.signum).name}"
                self.save()
                raise
            self.file.stop_reason = str(exc)
            with contextlib.suppress(UserError):  # the disk may still be full: then the file
                self.save()  # stays `running`, and its journal keeps the records
            if not self.path.exists():  # the folder was removed: nothing to resume
                raise
            raise UserError(f"{exc}; finish with: mnist-bench run --resume {self.path}") from None
        self.file.status = "complete"
        self.file.finished_utc = storage.utc_now()
        mark_determinism(self.file.records)
        self.file.determinism_cost = determinism_cost(self.file.records)
        self.file.aggregates = aggregate(self.file.records)
        self.save()
        return self.file

    def _run_group(self, jobs: list[Job], observer):
        backend = jobs[0].backend
        if backend not in environment.installed_backends():
            for job in jobs:
                record = launcher.failed_record(
                    job,
                    f"{backend} is not installed (pip install 'mnist-bench[{backend}]')",
                    status="skipped",
                )
                observer.on_record(job, record)
                yield record
            return
        c, settings = self.config, jobs[0].settings
        resolved = {v.name: v for v in resolve_variants(c, backend)}
        for job in [j for j in jobs if backend not in resolved[j.variant].backends]:
            v = resolved[job.variant]
            record = launcher.failed_record(
                job, variants.unsupported(v.name, v.backends), status="skipped"
            )
            record.variant_source = v.source
            observer.on_record(job, record)
            yield record
        jobs = [j for j in jobs if backend in resolved[j.variant].backends]
        if not jobs:
            return
        request = WorkerRequest(
            mode="train",
            backend=backend,
            data=c.data,
            threads=settings.threads,
            op_determinism=settings.op_determinism,
            targets=c.targets,
            infer_batch_sizes=c.infer_batch_sizes,
            jobs=tuple(jobs),
            variants=variants.sources(resolved.values()),
        )
        yield from launcher.run_backend(
            request,
            _GpuNoting(observer, self.file),
            record_timeout=c.record_timeout,
            train_samples=lambda job: len(self.dataset.x_train[: job.settings.train_limit]),
        )

    def _add(self, record: Record) -> None:
        if record.achieved_gflops and record.device == "cpu" and self.peak_gflops:
            record.mfu = record.achieved_gflops / self.peak_gflops
        dropped, problem = make_writable(record)
        name = f"{record.variant} on {record.backend}, seed {record.seed}"
        if dropped:
            print(
                f"mnist-bench: warning: {name}: left out {', '.join(dropped)} (not a valid value)",
                file=sys.stderr,
            )
        if problem:
            record = launcher.failed_record(record.job, f"not saved as measured: {problem}")
        self.file.records.append(record)
        self.journal.append(record, self.file.environment)


class _GpuNoting(launcher.Observer):
    """Passes events on; notes the GPUs each backend reports into the environment block."""

    def __init__(self, inner: launcher.Observer, run: RunFile) -> None:
        self.inner, self.run = inner, run

    def on_ready(self, backend, info):
        env = self.run.environment
        env.setdefault("backends", {})[backend] = {
            k: info.get(k) for k in ("version", "devices", "threads", "op_determinism")
        }
        for gpu in info.get("gpus", []):
            if gpu not in env["gpus"]:
                env["gpus"].append(gpu)
        self.inner.on_ready(backend, info)

    def on_start(self, job):
        self.inner.on_start(job)

    def on_epoch(self, job, event):
        self.inner.on_epoch(job, event)

    def on_record(self, job, record):
        self.inner.on_record(job, record)


def worker_groups(jobs: list[Job]) -> list[list[Job]]:
    """Jobs that can share a worker process: the same backend and repeat (a repeat runs in a
    fresh process) and the same process-wide settings (threads, op determinism)."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        process = tuple(getattr(job.settings, name) for name in PROCESS_SETTINGS)
        groups.setdefault((job.backend, job.repeat, *process), []).append(job)
    return list(groups.values())


def mark_determinism(records: list[Record]) -> None:
    """Where a job ran twice (repeat 0 and 1, same configuration and seed), compare the two
    bit for bit."""
    first = {r.job.seed_key: r for r in records if r.repeat == 0 and r.status == "ok"}
    for again in (r for r in records if r.repeat == 1 and r.status == "ok"):
        base = first.get(again.job.seed_key)
        if base is None:
            continue
        same = (
            base.weights_sha256 == again.weights_sha256
            and base.predictions_sha256 == again.predictions_sha256
        )
        base.deterministic = again.deterministic = same


def determinism_cost(records: list[Record]) -> dict[str, DeterminismCost]:
    """Per backend, the steady epoch with op determinism off and on, over the pairs of ok
    records whose jobs differ only in `op_determinism` (`--check-determinism` runs both)."""
    off = {
        identity.key_except(r.job, "op_determinism"): r
        for r in records
        if r.status == "ok" and not r.settings.op_determinism and r.steady_epoch_seconds
    }
    pairs: dict[str, list[tuple[Record, Record]]] = {}
    for r in records:
        if r.status != "ok" or not r.settings.op_determinism or not r.steady_epoch_seconds:
            continue
        base = off.get(identity.key_except(r.job, "op_determinism"))
        if base is not None:
            pairs.setdefault(r.backend, []).append((base, r))
    out = {}
    for backend, both in pairs.items():
        seconds = [
            (a.steady_epoch_seconds, b.steady_epoch_seconds)
            for a, b in both
            if a.steady_epoch_seconds and b.steady_epoch_seconds  # as `off` and `pairs` hold
        ]
        out[backend] = DeterminismCost(
            steady_seconds_off=math.fsum(a for a, _ in seconds) / len(seconds),
            steady_seconds_on=math.fsum(b for _, b in seconds) / len(seconds),
            ratio=math.exp(math.fsum(math.log(b / a) for a, b in seconds) / len(seconds)),
            pairs=len(seconds),
            noisy_pairs=sum(any(r.contended or r.unstable for r in pair) for pair in both),
        )
    return out


def cost_summary(costs: dict[str, DeterminismCost]) -> str:
    """One line for the run's summary: each backend's steady epoch, switches off -> on."""
    parts = [
        f"{backend} {c.steady_seconds_off:.3g} -> {c.steady_seconds_on:.3g} s "
        f"(x{c.ratio:.2f}, {c.pairs} pair{'s' * (c.pairs != 1)}"
        + (f", {c.noisy_pairs} contended or unstable" if c.noisy_pairs else "")
        + ")"
        for backend, c in costs.items()
    ]
    return "determinism cost (steady epoch, op determinism off -> on): " + "; ".join(parts)


def aggregate(records: list[Record]) -> list[dict[str, Any]]:
    """Per configuration: summaries over seeds of each metric (the determinism repeat left
    out: it checks the first process, it is not another sample)."""
    out = []
    ok = (r for r in records if r.status == "ok" and not r.repeat)
    for rs in identity.group(ok, identity.match_key).values():
        entry: dict[str, Any] = {**rs[0].job.fields(), "seeds": sorted({r.seed for r in rs})}
        for metric in HEADLINE:
            values = identity.seed_values(rs, attrgetter(metric.name))
            entry[metric.name] = stats.summarize(values).to_dict() if values else None
        out.append(entry)
    return out
