"""The rich console every command prints through (framework-free, imported by CLI and reports)."""

from __future__ import annotations

import contextlib
import os
import sys

_closed = False


def make_console(stderr: bool = False):
    """A rich console on standard output (or `stderr`); piped output gets a wide fixed width
    instead of rich's 80 columns.

    When the reader closes the pipe (`| head`), the console goes quiet and the command carries
    on (a run still trains and saves every record; rich's own handling would exit 1 at once);
    `mnist_bench.cli.main` then exits with its one code for it (`closed_stdout`)."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            discard_stdout()

    console = PipeConsole(stderr=stderr)
    return console if console.is_terminal else PipeConsole(stderr=stderr, width=240, no_color=True)


def discard_stdout() -> None:
    """Standard output's reader is gone: what is still written goes nowhere, quietly."""
    global _closed
    _closed = True
    no_file = contextlib.suppress(AttributeError, OSError, ValueError)  # no fd behind stdout
    with no_file, open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


def closed_stdout() -> bool:
    """Whether standard output's reader went away during this process."""
    return _closed
