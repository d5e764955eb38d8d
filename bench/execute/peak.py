"""The machine's float32 matrix-multiply peak (NumPy, all cores), cached per machine."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TypeGuard

import numpy as np
from mnist_bench.core import environment
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import files, storage

# A float32 matmul on any CPU NumPy runs on: well above a tenth of a GFLOP/s, well below a
# million (a PFLOP/s). A cached value outside this was not measured here: it is measured again.
SANE_GFLOPS = (0.1, 1e6)


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
    """The cached peak for this machine, measured (about 2 s) when absent or on `refresh`. A
    cache that cannot be read or holds no sane value is measured again, with one warning line."""
    path = cache_path()
    if not refresh:
        try:
            return cached(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            _warn(f"{path}: unreadable ({exc.strerror or exc})")
        except (UserError, ValueError) as exc:
            _warn(str(exc))
    gflops = measure()
    if not is_sane(gflops):
        return gflops  # not cached: measured again next time
    payload = {"gflops": gflops, "machine_id": environment.machine_id(), "numpy": np.__version__}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() or not path.exists():  # a FIFO or a folder there is not ours to replace
            storage.write_atomic(path, json.dumps(payload).encode(), what="cache")
    except (OSError, UserError):
        pass  # an unwritable cache costs a re-measurement next time, nothing more
    return gflops


def cached(path: Path) -> float:
    """The peak cached at `path`.

    Raises:
        FileNotFoundError: no cache yet.
        OSError, UserError: the cache cannot be read (a folder, a FIFO, too large...).
        ValueError: it holds no sane peak (not JSON, another shape, NaN, negative...).
    """
    raw = files.read_bytes(path, limit=files.CACHE_LIMIT, what="cache file")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, an integer of 5,000 digits
        raise ValueError(f"{path}: not a JSON cache") from None
    value = data.get("gflops") if isinstance(data, dict) else None
    if not is_sane(value):
        low, high = SANE_GFLOPS
        shown = repr(value)[:40]
        raise ValueError(f"{path}: gflops {shown} is not a peak ({low:g}..{high:g} GFLOP/s)")
    return float(value)


def is_sane(value: object) -> TypeGuard[int | float]:
    """A number (not a bool) within `SANE_GFLOPS` (so not NaN or infinite)."""
    low, high = SANE_GFLOPS
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def _warn(message: str) -> None:
    print(f"mnist-bench: warning: {message}; measuring the peak again", file=sys.stderr)
