"""PyTorch: `use_deterministic_algorithms`, threads by `torch.set_num_threads` (by default one
fewer than the usable cores: see `default_threads`)."""

from __future__ import annotations

from typing import Any

from mnist_bench.execute.backends import (
    default_threads,
    framework_threads,
    keep_out_tensorflow,
    set_keras_backend,
)


def configure(threads: int | None) -> None:
    set_keras_backend("torch")
    keep_out_tensorflow()


def enable_determinism() -> list[str]:
    import torch

    torch.use_deterministic_algorithms(True)
    return ["torch.use_deterministic_algorithms(True)"]


def apply_threads(threads: int | None) -> dict[str, Any]:
    import torch

    if threads or not framework_threads():
        torch.set_num_threads(threads or default_threads())
    # What was in force: the requested count, else `default_threads()` (or PyTorch's own).
    return {
        "requested": threads,
        "intra_op": torch.get_num_threads(),
        "inter_op": torch.get_num_interop_threads(),
    }


def info() -> dict[str, Any]:
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"version": torch.__version__, "gpus": gpus}
