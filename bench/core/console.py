"""The rich console every command prints through (framework-free, imported by CLI and reports)."""

from __future__ import annotations


def make_console(stderr: bool = False):
    """A rich console on standard output (or `stderr`); piped output gets a wide fixed width
    instead of rich's 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=240, no_color=True)
