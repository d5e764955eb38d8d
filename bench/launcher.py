"""Starts and watches worker processes: one backend each, killed whole on timeout or interrupt.

A worker that crashes, is killed, or hangs past its record's deadline costs that one record
(`failed`, with the cause); a fresh worker picks up the jobs after it.
"""

from __future__ import annotations

import collections
import contextlib
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

from bench.records import Record

STARTUP_TIMEOUT = 300.0  # importing a framework on a busy 2-core machine
MIN_RECORD_TIMEOUT = 180.0
PESSIMISTIC_FLOPS = 2e9  # FLOP/s a slow backend still beats on a 2-core CPU

_live: set[WorkerProcess] = set()  # started and not yet killed: what kill_all() must reach


def default_record_timeout(
    job: dict[str, Any], flops_per_train_sample: int, train_samples: int
) -> float:
    """A deadline no healthy record comes near: the work at a pessimistic FLOP/s, tripled."""
    work = flops_per_train_sample * train_samples * job["settings"]["epochs"]
    return MIN_RECORD_TIMEOUT + 3.0 * work / PESSIMISTIC_FLOPS


class WorkerProcess:
    """One `python -m bench.worker` in its own process group, read by two threads."""

    def __init__(self, request: dict[str, Any]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["MNIST_BENCH_PARENT_PID"] = str(os.getpid())  # the worker exits when it is gone
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker"],
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
            self.proc.stdin.write(json.dumps(request).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):  # a line that is not ours: skipped
                event = json.loads(line)
                if isinstance(event, dict) and "event" in event:
                    self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
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
    def on_start(self, job: dict[str, Any]) -> None: ...
    def on_epoch(self, job: dict[str, Any], event: dict[str, Any]) -> None: ...
    def on_record(self, job: dict[str, Any], record: Record) -> None: ...


def run_backend(
    request: dict[str, Any],
    jobs: list[dict[str, Any]],
    observer: Observer,
    record_timeout: float | None = None,
    on_worker: Callable[[WorkerProcess | None], None] = lambda w: None,
) -> Iterator[Record]:
    """Run `jobs` on one backend, yielding one record per job, whatever happens to workers."""
    pending = list(jobs)
    while pending:
        worker = WorkerProcess({**request, "mode": "train", "jobs": pending})
        on_worker(worker)
        try:
            yield from _drive(worker, pending, observer, record_timeout, request)
        finally:
            worker.kill()
            on_worker(None)


def _drive(
    worker: WorkerProcess,
    pending: list[dict[str, Any]],
    observer: Observer,
    record_timeout: float | None,
    request: dict[str, Any],
) -> Iterator[Record]:
    """Consume one worker's events; on its death or a timeout, fail the job in hand and return."""
    backend = request["backend"]
    ready = False
    deadline = time.monotonic() + STARTUP_TIMEOUT
    what = f"timeout: the {backend} worker did not start within {STARTUP_TIMEOUT:.0f} s"
    while pending:
        job = pending[0]
        try:
            event = worker.next_event(deadline)
        except TimeoutError:
            worker.kill()
            yield from _fail(pending, job, what, observer, all_jobs=not ready)
            return
        if event is None:  # the worker died
            yield from _fail(pending, job, worker.death_cause(), observer, all_jobs=not ready)
            return
        kind = event["event"]
        if kind == "start":
            limit = record_timeout or default_record_timeout(
                job, event["flops_per_train_sample"], request["train_samples"]
            )
            deadline, what = time.monotonic() + limit, f"timeout: record exceeded {limit:.0f} s"
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
            observer.on_epoch(job, event)
            continue
        elif kind == "record":
            try:
                record = Record.from_dict(event["record"])
            except (KeyError, ValueError, TypeError) as exc:
                record = failed_record(job, f"the {backend} worker sent a malformed record: {exc}")
            pending.pop(0)
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
    pending: list[dict[str, Any]],
    job: dict[str, Any],
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


def failed_record(job: dict[str, Any], cause: str, status: str = "failed") -> Record:
    settings = job["settings"]
    return Record(
        variant=job["variant"],
        backend=job["backend"],
        device=job["device"],
        requested_device=job["device"],
        seed=job["seed"],
        repeat=job.get("repeat", 0),
        status=status,
        error=cause,
        settings=settings,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
    )
