"""The options every command that reads run files shares, with one help text each."""

from __future__ import annotations

import argparse


def add_runs(p: argparse.ArgumentParser) -> None:
    """The run files (or folders of them) a reading command takes."""
    p.add_argument("runs", nargs="+", metavar="RUN", help="run files or folders of them")


def add_skip_bad(p: argparse.ArgumentParser) -> None:
    """`--skip-bad`: name and skip bad run files instead of stopping at the first."""
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="warn about and skip bad run files (malformed, truncated, newer schema) "
        "instead of stopping",
    )
