"""The typed view of a run's environment block takes any block, hostile ones included, and the
labels of a machine and a node come from it alone."""

from __future__ import annotations

import dataclasses

import pytest
from mnist_bench.core import environment
from mnist_bench.runfile.machine import (
    MAX_TEXT,
    Environment,
    machine_label,
    node_key,
    node_label,
    node_machine,
)
from mnist_bench.runfile.records import Machine

GOOD = {
    "machine_id": "fe8fc6a1b2",
    "cpu": {"model": "AMD EPYC 7B13 64-Core Processor", "logical_cores": 8, "usable_cores": 4},
    "memory_gib": 31.4,
    "gpus": ["NVIDIA H100 80GB HBM3"],
    "os": "Linux 6.1",
    "python": "3.12.1",
    "mnist_bench": "0.9",
    "packages": {"jax": "0.4.30", "torch": None},
    "git": {"commit": "abc123", "dirty": False},
    "dataset": {"class_names": ["zero", 1]},
    "backends": {"jax": {"version": "0.4.31", "devices": ["cpu"]}, "torch": {"threads": 2}},
    "dataset_digests": {"train": "aa11", "test": "bb22"},
    "command": "mnist-bench run --backends jax " + "--variants m.py " * 100,
}


def test_a_good_block_is_read_whole():
    view = Environment.of(GOOD)
    assert view.cpu_model == "AMD EPYC 7B13 64-Core Processor"
    assert (view.logical_cores, view.usable_cores, view.memory_gib) == (8, 4, 31.4)
    assert view.gpus == ("NVIDIA H100 80GB HBM3",)
    assert (view.os, view.python, view.git_commit, view.git_dirty) == (
        "Linux 6.1",
        "3.12.1",
        "abc123",
        False,
    )
    assert view.packages == {"jax": "0.4.30", "torch": None}
    assert view.class_names == ("zero", "1")
    assert view.backend_versions == {"jax": "0.4.31", "torch": None}
    assert view.dataset_digests == {"train": "aa11", "test": "bb22"}
    assert view.command == GOOD["command"] and len(view.command) > MAX_TEXT  # whole, not a label
    assert (
        machine_label(view)
        == machine_label(GOOD)
        == "AMD EPYC 7B13 + NVIDIA H100 80GB HBM3 [fe8fc6]"
    )


def test_the_view_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Environment.of(GOOD).cpu_model = "x"  # type: ignore[misc]


def test_this_machines_block_reads_back():
    env = environment.collect()
    view = Environment.of(env)
    assert view.python and view.logical_cores and view.logical_cores > 0
    assert view.cpu_model and view.machine_id and machine_label(view) == machine_label(env)


HOSTILE = [
    None,
    [],
    "environment",
    42,
    {},
    {"cpu": "x86", "gpus": "H100", "git": [1], "packages": ["jax"], "memory_gib": "lots"},
    {"cpu": {"model": 7, "logical_cores": "8", "usable_cores": True}, "memory_gib": True},
    {"cpu": {"model": None}, "gpus": [None, {}, {"name": None}, [1], {"name": {"a": 1}}, ""]},
    {"machine_id": 123456789, "python": 3.12, "os": ["Linux"], "git": {"commit": 1, "dirty": "no"}},
    {"packages": {"jax": 1, "torch": None, "tf": {"v": 2}}},
    {"backends": "jax", "dataset_digests": ["aa11"], "command": 5},
    {"backends": {"jax": "0.4", "torch": {"version": 2}, "tf": None}, "command": ["run"]},
]


@pytest.mark.parametrize("env", HOSTILE)
def test_a_hostile_block_never_raises_and_gives_none(env):
    view = Environment.of(env)
    for name in ("machine_id", "cpu_model", "logical_cores", "usable_cores", "memory_gib"):
        assert getattr(view, name) is None, name
    assert view.gpus == ()
    assert view.os is None and view.python is None and view.git_commit is None
    assert view.git_dirty is None and view.class_names is None
    assert all(v is None for v in view.packages.values())
    assert all(v is None for v in view.backend_versions.values())
    assert view.dataset_digests == {} and view.command is None
    assert machine_label(env if isinstance(env, dict) else view) == "unknown"  # " CPU" is noise
    node = node_machine(view)
    assert (node.cpu, node.cores, node.gpus) == ("", None, [])


def test_huge_strings_are_cut():
    huge = "A" * 10_000_000
    view = Environment.of({"cpu": {"model": huge}, "gpus": [huge, {"name": huge}], "os": huge})
    assert len(view.cpu_model or "") == MAX_TEXT and len(view.os or "") == MAX_TEXT
    assert [len(g) for g in view.gpus] == [MAX_TEXT, MAX_TEXT]
    assert len(machine_label(view)) < 3 * MAX_TEXT


def test_node_label_and_key_come_from_the_records_machine():
    node = node_machine(GOOD)
    assert node == Machine(
        machine_id="fe8fc6a1b2",
        cpu="AMD EPYC 7B13 64-Core Processor",
        cores=8,
        usable_cores=4,
        memory_gib=31.4,
        gpus=["NVIDIA H100 80GB HBM3"],
        python="3.12.1",
        mnist_bench="0.9",
        packages={"jax": "0.4.30", "torch": None},
    )
    assert node_label(node) == machine_label(GOOD)
    node.hostname = "worker-1"
    assert node_label(node) == "worker-1: " + machine_label(GOOD)
    assert node_key(node) == "fe8fc6a1b2"
    assert node_key(Machine(hostname="h", node_id="n")) == "h"
    assert node_key(Machine(node_id="n")) == "n"
    assert node_key(None) == ""


def test_a_hostile_dataset_pin_still_disagrees_with_the_data():
    """A pin is compared whole (readers refuse data it does not match): a value of the wrong
    type is kept as text, so it cannot drop out of the pin and let other data through."""
    view = Environment.of({"dataset_digests": {"train": 5, "test": None}})
    assert view.dataset_digests == {"train": "5", "test": "None"}
    assert view.dataset_digests != {"train": "aa11", "test": "bb22"}
