"""`mnist-bench baseline update`: its options, and the handler that runs the suite into a staged
run file beside the baseline (`mnist_bench.execute.baseline.Update`) and swaps it in only when
the run is complete.
"""

from __future__ import annotations

import argparse
import sys

from mnist_bench.core import escape


def add_baseline(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("update",),
        help="update: run the suite and replace the committed baseline with it",
    )
    p.add_argument(
        "--suite",
        default="suites/ci.toml",
        metavar="FILE.toml",
        help="the suite that defines the baseline (default: suites/ci.toml)",
    )
    p.add_argument(
        "--baseline-dir",
        default="results/baseline",
        metavar="DIR",
        help="where the baseline lives (default: results/baseline); the run is staged in a "
        "hidden folder beside it (.baseline.update-XXXX) until it is complete",
    )
    p.add_argument(
        "--resume",
        metavar="RUN.json",
        help="finish an interrupted update: the staged run file it named",
    )


def cmd_baseline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mnist_bench.commands.run import execute
    from mnist_bench.execute.baseline import Update
    from mnist_bench.execute.runner import Interrupted, interruptible

    update = Update(Path(args.suite), Path(args.baseline_dir))
    update.check()
    if not args.resume:
        for path in update.stopped():
            print(
                f"mnist-bench baseline: note: an earlier update stopped; finish it with: "
                f"{update.resume_command(path)} (or delete {path.parent})",
                file=sys.stderr,
            )
    with interruptible():
        try:
            run = update.resume(args.resume) if args.resume else update.start(sys.argv)
        except Interrupted as exc:
            print("interrupted before the run started; baseline not updated", file=sys.stderr)
            return 128 + exc.signum
    if isinstance(run, Path):  # staged and complete: only the rename was left
        update.finish(run)
    else:
        code = execute(run, figures=False, finish=update.resume_command(run.path))
        if code:
            if code == 1:  # failed records: nothing to resume, nothing worth keeping
                update.discard(run.path)
            print(
                f"error: baseline not updated (the run did not complete cleanly); "
                f"{escape.terminal(update.final)} is unchanged",
                file=sys.stderr,
            )
            return code
        update.finish(run.path)
    print(f"baseline updated: {escape.terminal(update.final)} (commit it)")
    return 0
