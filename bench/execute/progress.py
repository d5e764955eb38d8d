"""Live progress for `run`: a rich display on a terminal or in a notebook, one plain line per
record when piped."""

from __future__ import annotations

from mnist_bench.core import escape
from mnist_bench.core.identity import Job
from mnist_bench.execute.launcher import Observer
from mnist_bench.plan.estimate import Countdown
from mnist_bench.runfile.records import Record
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


def label(job: Job) -> str:
    return escape.terminal(job.label())


def describe(record: Record) -> str:
    if record.status == "ok":
        return f"acc {record.test_accuracy:.4f}  train {record.train_seconds:.1f} s  {record.where}"
    return f"{record.status}: {escape.terminal(record.error)}"


class PlainProgress(Observer):
    """Piped output: one line per finished record (and the time left), nothing animated."""

    def __init__(self, console: Console, total: int, countdown: Countdown | None = None) -> None:
        self.console, self.total, self.done = console, total, 0
        self.countdown = countdown

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def on_record(self, job, record):
        self.done += 1
        left = ""
        if self.countdown is not None:
            self.countdown.finish(job)
            left = f" ({self.countdown.text()})" if self.countdown.text() else ""
        self.console.print(
            escape.text(f"[{self.done}/{self.total}] {label(job)}: {describe(record)}{left}"),
            highlight=False,
        )


class RichProgress(Observer):
    """A terminal: an overall bar with the time left, and the record in hand with its
    epochs."""

    def __init__(self, console: Console, total: int, countdown: Countdown | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),  # labels are never markup
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}", markup=False),
            console=console,
            transient=False,
        )
        self.countdown = countdown
        left = countdown.text() if countdown else ""
        self.overall = self.progress.add_task("records", total=total, status="", left=left)
        self.current: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_ready(self, backend, info):
        self.progress.update(
            self.overall, status=escape.terminal(f"{backend} {info.get('version', '')} ready")
        )

    def on_start(self, job):
        self._drop_current()
        epochs = job.settings.epochs
        self.current = self.progress.add_task(
            f"  {label(job)}", total=epochs, status="epoch 1", left=""
        )

    def on_epoch(self, job, event):
        if self.current is not None:
            acc = f"  acc {event['accuracy']:.4f}" if "accuracy" in event else ""
            self.progress.update(
                self.current,
                completed=event["epoch"],
                status=f"epoch {event['epoch']}: {event['seconds']:.1f} s{acc}",
            )

    def on_record(self, job, record):
        self._drop_current()
        self.progress.console.print(escape.text(f"  {label(job)}: {describe(record)}"))
        self.progress.advance(self.overall)
        if self.countdown is not None:
            self.countdown.finish(job)
            self.progress.update(self.overall, left=self.countdown.text())

    def _drop_current(self) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None


def _widgets() -> bool:
    """rich draws its live display in a notebook through ipywidgets."""
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def make(
    console: Console, total: int, countdown: Countdown | None = None
) -> PlainProgress | RichProgress:
    """The rich display on a terminal, and in a notebook that has ipywidgets; else plain lines.
    With a `countdown`, each says about how long the run has left."""
    live = console.is_terminal or (console.is_jupyter and _widgets())
    kind = RichProgress if live else PlainProgress
    return kind(console, total, countdown)
