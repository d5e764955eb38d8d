"""Provenance: what machine, software and data produced a run. Imports no framework."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import mnist_bench

PACKAGES = (
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "torch",
    "numpy",
    "scipy",
    "rich",
    "matplotlib",
    "seaborn",
    "psutil",
)
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "MNIST_BENCH_FRAMEWORK_THREADS",
)
CPUINFO = Path("/proc/cpuinfo")  # Linux only: elsewhere the model comes from `platform`


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_backends() -> list[str]:
    """Backends whose framework is installed, found without importing it."""
    return [b for b, pkg in BACKEND_PACKAGES.items() if importlib.util.find_spec(pkg) is not None]


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask where the OS has one (Linux), else
    every core (macOS has no `sched_getaffinity`)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return len(getaffinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


@cache
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
    return {
        "model": model,
        "flags": [f for f in wanted if f in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
    }


def total_memory_gib() -> float:
    import psutil

    return round(psutil.virtual_memory().total / 2**30, 1)


def machine_id() -> str:
    """A short, hostname-free fingerprint of the hardware: CPU model, cores, memory."""
    cpu = cpu_info()
    basis = f"{cpu['model']}|{cpu['logical_cores']}|{total_memory_gib()}|{platform.machine()}"
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def git_info() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def nvidia_gpus() -> list[dict[str, Any]]:
    """Name, memory (MiB) and driver of each NVIDIA GPU, from `nvidia-smi`; [] where there is none.

    Asked of the driver's own tool so that no framework is imported for it.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        out = subprocess.run(
            [exe, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            name, memory, driver = parts
            gpus.append(
                {
                    "name": name,
                    "memory_mib": int(memory) if memory.isdigit() else None,
                    "driver": driver,
                }
            )
    return gpus


def collect(
    dataset_digests: dict[str, str] | None = None, argv: list[str] | None = None
) -> dict[str, Any]:
    """The environment block stored in every run file."""
    return {
        "mnist_bench": mnist_bench.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "machine_id": machine_id(),
        "cpu": cpu_info(),
        "memory_gib": total_memory_gib(),
        "gpus": [],  # names, filled from the workers' reports
        "gpu_details": nvidia_gpus(),  # name, memory and driver, from nvidia-smi
        "packages": {name: package_version(name) for name in PACKAGES},
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "git": git_info(),
        "dataset_digests": dataset_digests or {},
        "command": " ".join(argv if argv is not None else sys.argv),
    }
