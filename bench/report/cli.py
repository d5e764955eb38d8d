"""Options and handlers of `report`, `compare` and `check` (framework-free)."""

from __future__ import annotations

import argparse


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run files or folders of them")


def add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE")
    p.add_argument("new", metavar="NEW")


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="RESULTS")
    p.add_argument("--baseline", required=True)


def cmd_report(args: argparse.Namespace) -> int:
    raise NotImplementedError


def cmd_compare(args: argparse.Namespace) -> int:
    raise NotImplementedError


def cmd_check(args: argparse.Namespace) -> int:
    raise NotImplementedError
