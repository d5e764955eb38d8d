"""Which Keras performance knobs (`jit_compile`, `dtype_policy`, `steps_per_execution`) a
backend and device cannot honour, and why.

A job asking for one of these is skipped with the reason, never run with the knob silently
dropped. Everything not listed here runs as asked: on CPU, JAX and TensorFlow take every knob
(XLA, float16 and bfloat16 compute, several steps per call), and PyTorch takes `jit_compile`
(torch.compile) and both mixed policies. What `jit_compile="auto"` resolved to is in the record
(`Record.knobs`). Pure: imports no framework (the worker asks it before building the model).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mnist_bench.core.config import TrainSettings


def _cxx_found() -> bool:
    """The C++ compiler torch.compile's inductor builds CPU kernels with ($CXX, else g++)."""
    return shutil.which(os.environ.get("CXX") or "g++") is not None


def _triton_found() -> bool:
    """Triton, which torch.compile's inductor generates GPU kernels with."""
    return importlib.util.find_spec("triton") is not None


@dataclass(frozen=True)
class Rule:
    """A knob value a backend cannot honour on a device ("*": any device), unless `met` says
    that what it needs is there."""

    backend: str
    device: str
    knob: str
    applies: Callable[[Any], bool]
    reason: str
    met: Callable[[], bool] | None = None


RULES = (
    Rule(
        "torch", "*", "steps_per_execution", lambda value: value > 1,
        "Keras's PyTorch trainer runs one step per call (steps_per_execution must be 1)",
    ),
    Rule(
        "torch", "cpu", "jit_compile", lambda value: value == "true",
        "torch.compile needs a C++ compiler on CPU ($CXX, else g++) and none was found",
        met=_cxx_found,
    ),
    Rule(
        "torch", "gpu", "jit_compile", lambda value: value == "true",
        "torch.compile needs triton on GPU and it is not installed",
        met=_triton_found,
    ),
)  # fmt: skip


def refusal(backend: str, device: str, settings: TrainSettings) -> str | None:
    """Why `backend` on `device` (cpu or gpu) cannot honour the knobs in `settings`, or None."""
    for rule in RULES:
        if rule.backend != backend or rule.device not in ("*", device):
            continue
        value = getattr(settings, rule.knob)
        if rule.applies(value) and not (rule.met and rule.met()):
            return f"{rule.knob}={value} on {backend} ({device}): {rule.reason}"
    return None
