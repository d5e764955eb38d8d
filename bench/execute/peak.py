"""The machine's float32 matrix-multiply peak (NumPy, all cores), cached per machine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from mnist_bench.core import environment
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import files, storage


def cache_path() -> Path:
    return storage.cache_dir() / f"peak-{environment.machine_id()}.json"


def measure(size: int = 2048, min_time: float = 2.0) -> float:
    """Best GFLOP/s of float32 `size`x`size` matmuls over at least `min_time` seconds."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def peak_gflops(refresh: bool = False) -> float:
    """The cached peak for this machine, measured (about 2 s) when absent or on `refresh`."""
    path = cache_path()
    if not refresh:
        try:
            raw = files.read_bytes(path, limit=files.CACHE_LIMIT, what="cache file")
            return float(json.loads(raw)["gflops"])
        except (OSError, ValueError, KeyError, TypeError, UserError):
            pass
    gflops = measure()
    payload = {"gflops": gflops, "machine_id": environment.machine_id(), "numpy": np.__version__}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() or not path.exists():  # a FIFO or a folder there is not ours to replace
            storage.write_atomic(path, json.dumps(payload).encode(), what="cache")
    except (OSError, UserError):
        pass  # an unwritable cache costs a re-measurement next time, nothing more
    return gflops
