"""Where mnist-bench keeps its caches: the cache folder, and the run index's file in it. Light on
purpose (no records, no SQLite), so that `mnist-bench index --help` can name them quickly."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MNIST_BENCH_CACHE_DIR"  # overrides the cache folder (tests, read-only homes)
INDEX_ENV = "MNIST_BENCH_INDEX"  # the index file; "off" for none
INDEX_NAME = "run-index.sqlite"


def cache_dir() -> Path:
    """`$MNIST_BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/mnist-bench`, else
    `~/.cache/mnist-bench`: the backends' descriptions (`list`), the machine's peak and the run
    index."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-bench"


def index_path() -> Path | None:
    """`$MNIST_BENCH_INDEX`, else `run-index.sqlite` in the cache folder; None when the
    variable says `off`."""
    value = os.environ.get(INDEX_ENV, "").strip()
    if value.lower() in ("off", "0", "no", "none"):
        return None
    return Path(value) if value else cache_dir() / INDEX_NAME
