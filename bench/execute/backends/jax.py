"""JAX: XLA on CPU is deterministic; threads through XLA_FLAGS, set before JAX starts."""

from __future__ import annotations

import os
from typing import Any

from mnist_bench.execute.backends import keep_out_tensorflow, set_keras_backend


def configure(threads: int | None) -> None:
    set_keras_backend("jax")
    keep_out_tensorflow()
    if threads:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=false "
            f"intra_op_parallelism_threads={threads}"
        ).strip()


def enable_determinism() -> list[str]:
    return ["none needed: XLA on CPU is deterministic"]


def apply_threads(threads: int | None) -> dict[str, Any]:
    return {"requested": threads, "intra_op": threads or "default"}


def info() -> dict[str, Any]:
    import jax

    try:
        gpus = [str(getattr(d, "device_kind", d)) for d in jax.devices("gpu")]
    except RuntimeError:
        gpus = []
    return {"version": jax.__version__, "gpus": gpus}
