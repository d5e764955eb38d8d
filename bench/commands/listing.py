"""`mnist-bench list`: its options, and the handler that shows the variants and backends, or a
suite's expanded grid (`mnist_bench.execute.inventory`). A module named `listing`, since `list`
is a builtin's name.
"""

from __future__ import annotations

import argparse

from mnist_bench.core.console import make_console


def add_list(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip starting each backend (no parameter counts, FLOPs or devices)",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="describe each backend afresh instead of from the cache (kept per backend in "
        "$MNIST_BENCH_CACHE_DIR, else $XDG_CACHE_HOME/mnist-bench or ~/.cache/mnist-bench, "
        "and renewed by itself when a package version changes)",
    )
    p.add_argument(
        "--suite",
        metavar="FILE.toml",
        help="print the suite's expanded grid and its estimated run time",
    )


def cmd_list(args: argparse.Namespace) -> int:
    from mnist_bench.execute import inventory

    console = make_console()
    if args.suite:
        from mnist_bench.plan import suite

        console.print(
            inventory.suite_table(
                suite.load(args.suite), probe=not args.no_probe, color=console.is_terminal
            )
        )
        return 0
    for table in inventory.tables(
        probe=not args.no_probe, color=console.is_terminal, refresh=args.refresh
    ):
        console.print(table)
    return 0
