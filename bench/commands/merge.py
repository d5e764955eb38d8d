"""`mnist-bench merge`: its options, and the handler that merges through the API
(`mnist_bench.merge`) and says what is missing."""

from __future__ import annotations

import argparse
import sys

from mnist_bench.core import escape
from mnist_bench.runfile import output as policy

# The API's keywords, as this command's flags name them in messages.
FLAGS = {"output": "--output", "force": "--force", "allow_missing": "--allow-missing"}

EPILOG = """examples:
  mnist-bench merge shards/*.json --output results/runs/ci-merged.json
  mnist-bench merge shards/ --output merged.json --allow-missing   write what there is

exit codes: 0 merged; 1 a shard or job missing (nothing written without --allow-missing);
2 bad input (another grid, a shard or job doubled, an output that exists)."""


def add_merge(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "shards", nargs="+", metavar="SHARD", help="the shards' run files, or folders of them"
    )
    policy.add_options(
        p,
        what="the merged run",
        metavar="RUN.json",
        required=True,
        note=", outside the shards' folder (a report over that folder would read every record "
        "twice)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="write the merged file even with shards or jobs missing: it is marked "
        "interrupted, and `mnist-bench run --resume` runs what is missing",
    )


def cmd_merge(args: argparse.Namespace) -> int:
    from mnist_bench import api

    with api.as_command("merge", FLAGS):
        merged = api.merge(
            args.shards, output=args.output, force=args.force, allow_missing=args.allow_missing
        )
    for line in merged.missing:
        print(f"mnist-bench merge: {escape.terminal(line)}", file=sys.stderr)
    if merged.path is None:
        print(
            "mnist-bench merge: nothing written (--allow-missing writes what there is)",
            file=sys.stderr,
        )
        return 1
    run = merged.run
    print(
        f"merge: {escape.terminal(merged.path)} ({len(run.records)} record(s) from "
        f"{len(run.merged_from)} shard(s), "
        f"{run.status}" + (f", {len(run.pending)} pending" if run.pending else "") + ")",
        file=sys.stderr,
    )
    return 0
