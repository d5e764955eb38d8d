"""The rich console every command prints through (framework-free, imported by CLI and reports)."""

from __future__ import annotations


def make_console():
    """A rich console; piped output gets a wide fixed width instead of rich's 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=240, no_color=True)
