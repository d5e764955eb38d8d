"""Starts and watches worker processes: one backend each, killed whole on timeout or interrupt.

A worker that crashes, is killed, or hangs past its record's deadline costs that one record
(`failed`, with the cause); a fresh worker picks up the jobs after it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from mnist_bench.core.identity import Job, WorkerRequest
from mnist_bench.runfile.records import Record

STARTUP_TIMEOUT = 300.0  # importing a framework on a busy 2-core machine
MIN_STALL = 180.0  # never call a record stuck sooner than this after its last sign of progress
STALL_FACTOR = 10.0  # ... nor before ten times its slowest epoch so far has passed
COMPILE_STALL = 600.0  # more before the first epoch of a jit_compile=true job (torch.compile)
PESSIMISTIC_FLOPS = 2e9  # FLOP/s a slow backend still beats on a 2-core CPU

# Test hook: a Python script to start instead of `python -m mnist_bench.execute.worker`. The test
# suite's tests/fake_worker.py speaks the same protocol with made-up records and no framework,
# for tests of orchestration (signals, timeouts, dead workers, resume) that need no real training.
WORKER_ENV = "MNIST_BENCH_WORKER"

_live: set[WorkerProcess] = set()  # started and not yet killed: what kill_all() must reach


class Watchdog:
    """When a record counts as stuck: no progress (a finished epoch) for far longer than it
    should take, not a total budget.

    A record on a busy machine may run several times slower than usual (PyTorch epochs swung
    from 5 to 38 s beside a neighbour) and must still finish; only a worker that stops making
    progress is killed. Before the first epoch the allowance is one epoch's work at a
    pessimistic FLOP/s, tripled, plus `MIN_STALL` (and `COMPILE_STALL` when the job asks for
    `jit_compile=true`: torch.compile's first epoch builds C++ kernels for minutes); after each
    epoch it is `STALL_FACTOR` times the slowest epoch so far (at least `MIN_STALL`), which also
    covers the measurements after the last epoch. A user's `--record-timeout` caps the whole
    record on top.
    """

    def __init__(
        self, job: Job, flops_per_train_sample: int, train_samples: int, cap: float | None = None
    ) -> None:
        self.job, self.cap, self.started = job, cap, time.monotonic()
        work = flops_per_train_sample * train_samples
        self.allowance = MIN_STALL + 3.0 * work / PESSIMISTIC_FLOPS
        if job.settings.jit_compile == "true":
            self.allowance += COMPILE_STALL
        self.slowest, self.epochs, self.last = 0.0, 0, self.started

    def on_epoch(self, seconds: float) -> None:
        self.epochs += 1
        self.slowest = max(self.slowest, seconds)
        self.allowance = max(MIN_STALL, STALL_FACTOR * self.slowest)
        self.last = time.monotonic()

    @property
    def deadline(self) -> float:
        stall = self.last + self.allowance
        return stall if self.cap is None else min(stall, self.started + self.cap)

    def reason(self) -> str:
        now = time.monotonic()
        if self.cap is not None and now >= self.started + self.cap - 1e-3:
            return f"timeout: record exceeded --record-timeout {self.cap:g} s"
        where = f"after epoch {self.epochs} of {self.job.settings.epochs}"
        if self.epochs == self.job.settings.epochs:
            where = "after its last epoch (evaluating and measuring inference)"
        slowest = f"; its slowest epoch took {self.slowest:.1f} s" if self.epochs else ""
        return f"timeout: no progress for {now - self.last:.0f} s {where}{slowest}"


class WorkerProcess:
    """One `python -m mnist_bench.execute.worker` in its own process group, read by two threads."""

    def __init__(self, request: WorkerRequest) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["MNIST_BENCH_PARENT_PID"] = str(os.getpid())  # the worker exits when it is gone
        script = os.environ.get(WORKER_ENV)
        self.proc = subprocess.Popen(
            [sys.executable, script]
            if script
            else [sys.executable, "-m", "mnist_bench.execute.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        _live.add(self)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            assert self.proc.stdin is not None  # opened with PIPE, as are stdout and stderr
            self.proc.stdin.write(request.to_json())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):  # a line that is not ours: skipped
                event = json.loads(line)
                if isinstance(event, dict) and "event" in event:
                    self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next event; None at end of stream; raises TimeoutError past `deadline`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            return self.events.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None

    def kill(self, wait: float = 10.0) -> None:
        """Kill the worker's whole process group, and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        _live.discard(self)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=wait)

    def death_cause(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            return "worker stopped answering"
        last = _last_error_line(self.stderr_tail)
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            cause = f"worker killed by {name}{hint}"
        else:
            cause = f"worker exited with code {code}"
        return f"{cause}: {last}" if last else cause


def kill_all() -> None:
    """Kill every worker still running, without waiting: for a parent about to exit at once."""
    for worker in list(_live):
        worker.kill(wait=0)


def _last_error_line(lines: collections.deque[str]) -> str:
    for line in reversed(lines):
        if line.strip() and not line.startswith((" ", "\t", "Traceback", "WARNING")):
            return line.strip()[:300]
    return ""


class Observer:
    """What the launcher reports as it goes; the CLI's progress display implements it."""

    def on_ready(self, backend: str, info: dict[str, Any]) -> None: ...
    def on_start(self, job: Job) -> None: ...
    def on_epoch(self, job: Job, event: dict[str, Any]) -> None: ...
    def on_record(self, job: Job, record: Record) -> None: ...


def run_backend(
    request: WorkerRequest,
    observer: Observer,
    record_timeout: float | None = None,
    train_samples: Callable[[Job], int] = lambda job: 60_000,
    on_worker: Callable[[WorkerProcess | None], None] = lambda w: None,
) -> Iterator[Record]:
    """Run the request's jobs on its backend, yielding one record per job, whatever happens to
    workers: a worker that dies costs the job in hand, and a fresh one takes the rest."""
    pending = list(request.jobs)
    while pending:
        worker = WorkerProcess(dataclasses.replace(request, jobs=tuple(pending)))
        on_worker(worker)
        try:
            yield from _drive(worker, pending, observer, record_timeout, request, train_samples)
        finally:
            worker.kill()
            on_worker(None)


def _drive(
    worker: WorkerProcess,
    pending: list[Job],
    observer: Observer,
    record_timeout: float | None,
    request: WorkerRequest,
    train_samples: Callable[[Job], int],
) -> Iterator[Record]:
    """Consume one worker's events; on its death or a timeout, fail the job in hand and return."""
    backend = request.backend
    ready = False
    watchdog: Watchdog | None = None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    what: str | Callable[[], str]
    what = f"timeout: the {backend} worker did not start within {STARTUP_TIMEOUT:.0f} s"
    while pending:
        job = pending[0]
        try:
            event = worker.next_event(deadline)
        except TimeoutError:
            worker.kill()
            cause = what() if callable(what) else what
            yield from _fail(pending, job, cause, observer, all_jobs=not ready)
            return
        if event is None:  # the worker died
            yield from _fail(pending, job, worker.death_cause(), observer, all_jobs=not ready)
            return
        kind = event["event"]
        if kind == "start":
            watchdog = Watchdog(
                job, event["flops_per_train_sample"], train_samples(job), cap=record_timeout
            )
            deadline, what = watchdog.deadline, watchdog.reason
            observer.on_start(job)
            continue
        if kind == "ready":  # next: loading the data and building the first model
            ready = True
            observer.on_ready(backend, event)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            what = (
                f"timeout: the {backend} worker did not start its first record within "
                f"{STARTUP_TIMEOUT:.0f} s of coming up"
            )
            continue
        if kind == "epoch":
            if watchdog is not None:
                watchdog.on_epoch(float(event.get("seconds") or 0.0))
                deadline = watchdog.deadline
            observer.on_epoch(job, event)
            continue
        elif kind == "record":
            try:
                record = Record.from_dict(event["record"])
                if record.key != job.key:
                    raise ValueError(f"it is for {record.job.label()}, not {job.label()}")
            except (KeyError, ValueError, TypeError) as exc:
                record = failed_record(job, f"the {backend} worker sent a malformed record: {exc}")
            pending.pop(0)
            watchdog = None
            observer.on_record(job, record)
            yield record
        elif kind == "done":
            return
        # Between records the worker builds the next model: that is not the record's time, so it
        # gets the startup allowance, not the (possibly short) record timeout.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        what = (
            f"timeout: the {backend} worker did not start its next record within "
            f"{STARTUP_TIMEOUT:.0f} s"
        )


def _fail(
    pending: list[Job],
    job: Job,
    cause: str,
    observer: Observer,
    *,
    all_jobs: bool,
) -> Iterator[Record]:
    """Record the job in hand (or, if the worker never came up, every pending job) as failed."""
    victims = list(pending) if all_jobs else [job]
    for victim in victims:
        pending.remove(victim)
        record = failed_record(victim, cause)
        observer.on_record(victim, record)
        yield record


def failed_record(job: Job, cause: str, status: str = "failed") -> Record:
    """The record of a job that did not finish: its full identity, the status and the cause."""
    return Record(job=job, status=status, error=cause)
