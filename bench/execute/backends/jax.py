"""JAX: XLA on CPU is deterministic; threads through XLA_FLAGS, set before JAX starts."""

from __future__ import annotations

import os
from typing import Any

from mnist_bench.execute.backends import (
    default_threads,
    framework_threads,
    keep_out_tensorflow,
    set_keras_backend,
)

_in_force: int | None = None  # the intra-op count configure() set; None: JAX's own


def configure(threads: int | None) -> None:
    """`threads` intra-op threads where asked. Without it, where `default_threads()` is 1 (two
    usable cores or fewer), one thread too: XLA's own Eigen pool (one thread per core) beside
    the Python thread that dispatches each step ran the seed's two-dense at speeds 1.37x apart
    across 16 fresh processes on 2 cores (CV 8.9%, 3 of 16 processes 10% or more slow), one
    thread 1.27x apart (CV 5.4%, 1 of 16) at the same speed and with the same weights
    (`benchmarks/process_spread.py`; docs/methodology.md). With more cores, JAX's own pool:
    these flags set no pool size short of one thread. `MNIST_BENCH_FRAMEWORK_THREADS=1`: JAX's
    own pool."""
    global _in_force
    set_keras_backend("jax")
    keep_out_tensorflow()
    count = threads or (1 if default_threads() == 1 and not framework_threads() else None)
    if count:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=false "
            f"intra_op_parallelism_threads={count}"
        ).strip()
    _in_force = count


def enable_determinism() -> list[str]:
    return ["none needed: XLA on CPU is deterministic"]


def apply_threads(threads: int | None) -> dict[str, Any]:
    return {"requested": threads, "intra_op": _in_force or "default"}


def info() -> dict[str, Any]:
    import jax

    try:
        gpus = [str(getattr(d, "device_kind", d)) for d in jax.devices("gpu")]
    except RuntimeError:
        gpus = []
    return {"version": jax.__version__, "gpus": gpus}
