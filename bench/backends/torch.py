"""PyTorch: `use_deterministic_algorithms`, threads by `torch.set_num_threads`."""

from __future__ import annotations

from typing import Any

from mnist_bench.backends import keep_out_tensorflow, set_keras_backend


def configure(threads: int | None) -> None:
    set_keras_backend("torch")
    keep_out_tensorflow()


def enable_determinism() -> list[str]:
    import torch

    torch.use_deterministic_algorithms(True)
    return ["torch.use_deterministic_algorithms(True)"]


def apply_threads(threads: int | None) -> dict[str, Any]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    # What was in force: without `threads`, PyTorch's own default (one intra-op thread per
    # core: 2 on a 2-core machine).
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
