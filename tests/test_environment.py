"""Provenance without a framework: GPU details come from nvidia-smi, when there is one."""

from __future__ import annotations

import os
import stat

from conftest import run_cli
from mnist_bench.core import environment
from mnist_bench.runfile.collect import machine_label


def fake_nvidia_smi(folder, output: str) -> str:
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\nprintf '{output}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_gpu_name_memory_and_driver_from_nvidia_smi(tmp_path, monkeypatch):
    path = fake_nvidia_smi(tmp_path, "NVIDIA H100 80GB HBM3, 81559, 550.54.15\\n")
    monkeypatch.setenv("PATH", path)
    assert environment.nvidia_gpus() == [
        {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "driver": "550.54.15"}
    ]
    out = run_cli("env", env={"PATH": path})
    assert (
        out.returncode == 0 and "NVIDIA H100 80GB HBM3 (81559 MiB, driver 550.54.15)" in out.stdout
    )


def test_no_or_broken_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, "garbage"))
    assert environment.nvidia_gpus() == []
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert environment.nvidia_gpus() == []


def test_machine_label_names_cpu_gpu_and_short_id():
    env = {
        "cpu": {"model": "AMD EPYC 7B13 64-Core Processor"},
        "machine_id": "fe8fc65c34c5",
        "gpus": ["NVIDIA H100 80GB HBM3"],
    }
    assert machine_label(env) == "AMD EPYC 7B13 + NVIDIA H100 80GB HBM3 [fe8fc6]"
