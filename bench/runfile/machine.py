"""The machine a run or a record ran on: a typed, read-only view of a run file's `environment`
block, and the one way to label a machine (a run's) or a node (a record's).

The block itself is written and stored as it always was (a plain dict, see the JSON schema);
this view is for readers, so none of them digs into the dict defensively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mnist_bench.runfile.records import Machine

MAX_TEXT = 1000  # longer strings in a hostile block are cut: a label stays a label

_NOISE = ("(R)", "(TM)", "(tm)", " CPU", " Processor", " 64-Core", " 32-Core", " 16-Core")


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _gpu_name(gpu: Any) -> str | None:
    name = gpu.get("name") if isinstance(gpu, dict) else gpu
    if name is None or isinstance(name, dict | list):
        return None
    return str(name)[:MAX_TEXT]


@dataclass(frozen=True)
class Environment:
    """A run's environment block, typed. A missing or wrongly-typed field is None (or empty),
    never an error: `of` takes any value.

    Attributes:
        machine_id: the hardware fingerprint; equal on identical machines.
        cpu_model, logical_cores, usable_cores: the CPU.
        memory_gib: total memory.
        gpus: GPU names.
        os, python, mnist_bench: the system and versions.
        packages: framework versions (a version or None where not installed).
        backend_versions: each backend's version as its worker reported it (None where it
            reported none).
        git_commit, git_dirty: the checkout that ran.
        class_names: the dataset's class names, where it names them.
        dataset_digests: the digests of the data the run was measured on ({} where unpinned).
        command: the command line that started the run, whole.
    """

    machine_id: str | None = None
    cpu_model: str | None = None
    logical_cores: int | None = None
    usable_cores: int | None = None
    memory_gib: float | None = None
    gpus: tuple[str, ...] = ()
    os: str | None = None
    python: str | None = None
    mnist_bench: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    backend_versions: dict[str, str | None] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    class_names: tuple[str, ...] | None = None
    dataset_digests: dict[str, str] = field(default_factory=dict)
    command: str | None = None

    @classmethod
    def of(cls, env: Any) -> Environment:
        """The view of an environment block; anything that is not one gives an empty view."""
        env = _dict(env)
        cpu, git = _dict(env.get("cpu")), _dict(env.get("git"))
        memory = env.get("memory_gib")
        gpus = env.get("gpus")
        dirty = git.get("dirty")
        names = _dict(env.get("dataset")).get("class_names")
        return cls(
            machine_id=_text(env.get("machine_id")),
            cpu_model=_text(cpu.get("model")),
            logical_cores=_count(cpu.get("logical_cores")),
            usable_cores=_count(cpu.get("usable_cores")),
            memory_gib=(
                float(memory)
                if isinstance(memory, int | float) and not isinstance(memory, bool)
                else None
            ),
            gpus=tuple(
                n for n in (_gpu_name(g) for g in (gpus if isinstance(gpus, list) else [])) if n
            ),
            os=_text(env.get("os")),
            python=_text(env.get("python")),
            mnist_bench=_text(env.get("mnist_bench")),
            packages={
                str(k)[:MAX_TEXT]: _text(v)
                for k, v in _dict(env.get("packages")).items()
                if isinstance(v, str) or v is None
            },
            backend_versions={
                str(k)[:MAX_TEXT]: _text(_dict(v).get("version"))
                for k, v in _dict(env.get("backends")).items()
            },
            git_commit=_text(git.get("commit")),
            git_dirty=dirty if isinstance(dirty, bool) else None,
            class_names=tuple(str(n) for n in names) if isinstance(names, list) else None,
            # any value of a pin is kept (as text): a hostile pin still disagrees with the data
            dataset_digests={str(k): str(v) for k, v in _dict(env.get("dataset_digests")).items()},
            command=env.get("command") if isinstance(env.get("command"), str) else None,
        )


def machine_label(env: Environment | dict[str, Any]) -> str:
    """A short, readable machine label: CPU model (and GPU models), plus the short machine id."""
    view = env if isinstance(env, Environment) else Environment.of(env)
    model = view.cpu_model or "unknown CPU"
    for noise in _NOISE:
        model = model.replace(noise, "")
    model = " ".join(model.replace("@", " @ ").split())
    gpus = sorted({g for g in view.gpus if g})
    label = model + (" + " + ", ".join(gpus) if gpus else "")
    mid = (view.machine_id or "")[:6]
    return f"{label} [{mid}]" if mid else label


def node_label(machine: Machine) -> str:
    """`machine_label` of a record's node, with its host name: nodes of one kind stay apart."""
    view = Environment(
        machine_id=machine.machine_id, cpu_model=machine.cpu, gpus=tuple(machine.gpus)
    )
    label = machine_label(view)
    return f"{machine.hostname}: {label}" if machine.hostname else label


def node_machine(env: Environment | dict[str, Any]) -> Machine:
    """A run's machine, from its environment block, as a record's `Machine`."""
    view = env if isinstance(env, Environment) else Environment.of(env)
    return Machine(
        machine_id=view.machine_id or "",
        cpu=view.cpu_model or "",
        cores=view.logical_cores,
        usable_cores=view.usable_cores,
        memory_gib=view.memory_gib,
        gpus=list(view.gpus),
        python=view.python or "",
        mnist_bench=view.mnist_bench or "",
        packages=dict(view.packages),
    )


def node_key(record_machine: Machine | None) -> str:
    """The kind of machine a record ran on, where it names its own (records of a local run
    leave it to the run's environment: "")."""
    if record_machine is None:
        return ""
    return record_machine.machine_id or record_machine.hostname or record_machine.node_id
