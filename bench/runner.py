"""Runs a configuration: jobs -> one worker per backend -> records, saved as each one lands.

The parent never imports a framework. The run file is rewritten atomically after every record,
so an interrupt, a crash or a full disk loses nothing already measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import models
from bench import data, environment, launcher, peak, stats, storage
from bench.config import BACKENDS, RunConfig
from bench.errors import UserError
from bench.records import SCHEMA_VERSION, Record, RunFile, load_run, settings_key

AGGREGATED = (
    "test_accuracy",
    "train_seconds",
    "train_samples_per_second",
    "infer_samples_per_second",
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


def expand_jobs(config: RunConfig) -> list[dict[str, Any]]:
    """Every (backend, repeat, variant, seed) to run, in the order they run."""
    names = config.variants or models.default_names()
    if "all" in names:
        names = models.names()
    variants = [models.get(name) for name in dict.fromkeys(names)]
    backends = validate_backends(config.backends)
    if not backends:
        raise UserError(
            "no backend installed: pip install 'mnist-bench[all]' (or [tensorflow], [jax], [torch])"
        )
    overrides = config.settings_overrides()
    repeats = (0, 1) if config.check_determinism else (0,)
    jobs = []
    for backend in backends:
        for repeat in repeats:
            for variant in variants:
                for point in config.grid:
                    settings = variant.defaults.override(**point).override(**overrides)
                    _check_settings(settings)
                    for device in config.devices:
                        for seed in config.seeds:
                            jobs.append(
                                {
                                    "index": len(jobs),
                                    "backend": backend,
                                    "repeat": repeat,
                                    "variant": variant.name,
                                    "device": device,
                                    "seed": seed,
                                    "settings": settings.to_dict(),
                                }
                            )
    return jobs


def _check_settings(settings) -> None:
    if settings.epochs < 1:
        raise UserError(f"--epochs must be at least 1 (got {settings.epochs})")
    if settings.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1 (got {settings.batch_size})")
    if settings.learning_rate is not None and settings.learning_rate <= 0:
        raise UserError(f"--learning-rate must be positive (got {settings.learning_rate})")


def job_key(job: dict[str, Any]) -> tuple:
    return (
        job["variant"],
        job["backend"],
        job["device"],
        job["seed"],
        job["repeat"],
        settings_key(job["settings"]),
    )


def record_key(record: Record) -> tuple:
    return (
        record.variant,
        record.backend,
        record.requested_device or record.device,
        record.seed,
        record.repeat,
        settings_key(record.settings),
    )


class Run:
    """One run in progress: its file on disk and the jobs it still has to do."""

    def __init__(self, config: RunConfig, run: RunFile, path: Path, dataset: data.Dataset):
        self.config, self.file, self.path, self.dataset = config, run, path, dataset
        done = {record_key(r) for r in run.records}
        self.pending = [j for j in expand_jobs(config) if job_key(j) not in done]
        self.peak_gflops = peak.peak_gflops()

    @classmethod
    def start(cls, config: RunConfig, argv: list[str] | None = None) -> Run:
        """Validate everything a user can get wrong, then create the run file."""
        expand_jobs(config)
        _check_limits(config)
        dataset = data.load(config.data)
        folder = storage.ensure_dir(config.results_path)
        env = environment.collect(dataset.digests, argv)
        env["dataset"] = {
            "name": dataset.name,
            "source": dataset.source,
            "class_names": list(dataset.class_names),
        }
        run = RunFile(
            run_id=storage.new_run_id(),
            started_utc=storage.utc_now(),
            config=config.to_dict(),
            environment=env,
            schema_version=SCHEMA_VERSION,
        )
        path = storage.reserve_run_path(folder, run.run_id, run.to_dict())
        return cls(config, run, path, dataset)

    @classmethod
    def resume(cls, path: str | Path) -> Run:
        """Reopen an interrupted run to do only what it is missing."""
        path = Path(path)
        run = load_run(path)
        if run.status == "complete":
            raise UserError(f"{path}: run is already complete; nothing to resume")
        try:
            config = RunConfig.from_dict(run.config)
            expand_jobs(config)
            _check_limits(config)
        except UserError as exc:
            raise UserError(f"{path}: its configuration is not valid: {exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise UserError(f"{path}: its configuration is not valid ({exc})") from None
        dataset = data.load(config.data)
        digests = run.environment.get("dataset_digests")
        if digests and digests != dataset.digests:
            raise UserError(f"{path}: the dataset {config.data!r} is not the one this run used")
        storage.ensure_dir(path.parent)
        return cls(config, run, path, dataset)

    def save(self) -> None:
        storage.write_json(self.path, self.file.to_dict())

    def execute(self, observer: launcher.Observer) -> RunFile:
        """Run every pending job; on `Interrupted`, mark the file and re-raise."""
        self.file.status = "running"
        self.file.pending = []
        try:
            for (backend, _repeat), jobs in _groups(self.pending):
                with contextlib.closing(self._run_group(backend, jobs, observer)) as records:
                    for record in records:
                        self._add(record)
        except Interrupted:
            done = {record_key(r) for r in self.file.records}
            self.file.status = "interrupted"
            self.file.pending = [j for j in self.pending if job_key(j) not in done]
            self.file.finished_utc = storage.utc_now()
            self.save()
            raise
        self.file.status = "complete"
        self.file.finished_utc = storage.utc_now()
        mark_determinism(self.file.records)
        self.file.aggregates = aggregate(self.file.records)
        self.save()
        return self.file

    def _run_group(self, backend: str, jobs: list[dict[str, Any]], observer):
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
        c = self.config
        request = {
            "backend": backend,
            "data": c.data,
            "train_limit": c.train_limit,
            "test_limit": c.test_limit,
            "targets": list(c.targets),
            "infer_batch_sizes": list(c.infer_batch_sizes),
            "threads": c.threads,
            "op_determinism": c.check_determinism,
            "train_samples": len(self.dataset.x_train[: c.train_limit]),
        }
        yield from launcher.run_backend(
            request, jobs, _GpuNoting(observer, self.file), record_timeout=c.record_timeout
        )

    def _add(self, record: Record) -> None:
        if record.achieved_gflops and record.device == "cpu" and self.peak_gflops:
            record.mfu = record.achieved_gflops / self.peak_gflops
        self.file.records.append(record)
        self.pending = [j for j in self.pending if job_key(j) != record_key(record)]
        self.save()


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


def _check_limits(config: RunConfig) -> None:
    for name in ("train_limit", "test_limit", "threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    if config.record_timeout is not None and config.record_timeout <= 0:
        raise UserError("--record-timeout must be positive")
    if any(b < 1 for b in config.infer_batch_sizes):
        raise UserError("--infer-batch-sizes must all be at least 1")
    if not config.seeds:
        raise UserError("--seeds needs at least one seed")


def _groups(jobs: list[dict[str, Any]]):
    """Consecutive jobs sharing (backend, repeat): each group is one worker process."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for job in jobs:
        groups.setdefault((job["backend"], job["repeat"]), []).append(job)
    return groups.items()


def mark_determinism(records: list[Record]) -> None:
    """Where a configuration ran twice (repeat 0 and 1), compare the two bit for bit."""
    first = {r.key[:4]: r for r in records if r.repeat == 0 and r.status == "ok"}
    for again in (r for r in records if r.repeat == 1 and r.status == "ok"):
        base = first.get(again.key[:4])
        if base is None:
            continue
        same = (
            base.weights_sha256 == again.weights_sha256
            and base.predictions_sha256 == again.predictions_sha256
        )
        base.deterministic = again.deterministic = same


def group_key(record: Record) -> tuple:
    return (
        record.variant,
        record.backend,
        record.device,
        record.dataset,
        settings_key(record.settings),
    )


def aggregate(records: list[Record]) -> list[dict[str, Any]]:
    """Per (variant, backend, device, dataset, settings): summaries over seeds of each metric."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        if r.status == "ok" and r.repeat == 0:
            groups.setdefault(group_key(r), []).append(r)
    out = []
    for (variant, backend, device, dataset, settings), rs in groups.items():
        entry = {
            "variant": variant,
            "backend": backend,
            "device": device,
            "dataset": dataset,
            "settings": json.loads(settings),
            "seeds": [r.seed for r in rs],
        }
        for metric in AGGREGATED:
            values = [getattr(r, metric) for r in rs if getattr(r, metric) is not None]
            entry[metric] = stats.summarize(values).to_dict() if values else None
        out.append(entry)
    return out
