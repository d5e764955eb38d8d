"""The rich console every command prints through (framework-free, imported by CLI and reports)."""

from __future__ import annotations


def make_console(stderr: bool = False):
    """A rich console on standard output (or `stderr`); piped output gets a wide fixed width
    instead of rich's 80 columns. A closed pipe raises `BrokenPipeError` (rich's own handling
    would exit 1), which `mnist_bench.cli.main` turns into the one exit code for it."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    console = PipeConsole(stderr=stderr)
    return console if console.is_terminal else PipeConsole(stderr=stderr, width=240, no_color=True)
