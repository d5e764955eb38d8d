"""`mnist-bench env`: its options, and the handler that shows this machine's provenance block
(`mnist_bench.core.environment`) with its measured matmul peak."""

from __future__ import annotations

import argparse

from mnist_bench.core.console import make_console


def add_env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the environment block as JSON")
    p.add_argument(
        "--peak",
        action="store_true",
        help="measure this machine's float32 matmul peak (GFLOP/s) anew and cache it",
    )


def cmd_env(args: argparse.Namespace) -> int:
    import json

    from mnist_bench.core import environment
    from mnist_bench.execute import inventory, peak

    env = environment.collect()
    env["peak_gflops"] = peak.peak_gflops(refresh=args.peak)
    if args.json:
        print(json.dumps(env, indent=2))
        return 0
    console = make_console()
    console.print(inventory.environment_table(env, color=console.is_terminal))
    return 0
