"""`mnist-bench index`: build or refresh the run index (`mnist_bench.runfile.index`) by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_bench.core.errors import UserError
from mnist_bench.runfile.cache import INDEX_ENV, INDEX_NAME, index_path

EPILOG = f"""The index is a cache of the run files `report`, `history`, `compare`, `check`, `export`
and `parity` read: every reader fills and uses it, so this command is never needed. It lives
at $MNIST_BENCH_INDEX, else {INDEX_NAME} in the cache folder ($MNIST_BENCH_CACHE_DIR, else
~/.cache/mnist-bench); MNIST_BENCH_INDEX=off reads without it. Delete it at any time.

examples:
  mnist-bench index results/nightly           index (or refresh) a folder of run files
  mnist-bench index --rebuild results/nightly read every file again

exit codes: 0 ok; 2 a missing path, or a bad file (see --skip-bad)."""


def add_index(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("paths", nargs="+", metavar="PATH", help="run files or folders of them")
    p.add_argument("--rebuild", action="store_true", help="read every file again")
    p.add_argument("--skip-bad", action="store_true", help="warn about bad files, index the rest")


def cmd_index(args: argparse.Namespace) -> int:
    from mnist_bench.runfile import collect, index
    from mnist_bench.runfile.index import Reader

    location = index_path()
    if location is None:
        raise UserError(f"{INDEX_ENV}=off: no index to build")
    files = collect.run_file_names(args.paths)
    folders = [Path(p) for p in args.paths if Path(p).is_dir()]
    bad = 0
    with Reader(files, folders, rebuild=args.rebuild) as read:
        for path in files:
            try:
                read.refresh(path)
            except UserError as exc:
                if not args.skip_bad:
                    raise UserError(f"{exc} (pass --skip-bad to skip bad files)") from None
                bad += 1
                index.warn_stderr(f"skipped {exc}")
        fresh = len(files) - read.read
        opened = read.db is not None
    where = location if opened and read.written else f"{location} (could not be written)"
    print(
        f"{len(files) - bad} run files indexed ({read.read - bad} read, {fresh} unchanged"
        f"{f', {bad} bad' if bad else ''}) in {where}"
    )
    return 0
