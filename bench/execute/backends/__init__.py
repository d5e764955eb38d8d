"""One module per Keras backend: what its worker sets before the framework starts, what it keeps
out, its thread settings, its determinism switches, and the devices it sees.

Importing this package imports no framework; `get(name)` imports only that backend's module,
which imports its framework only inside its functions. Each module provides:

- `configure(threads)`: environment set before the framework is imported;
- `enable_determinism() -> list[str]`: the switches turned on, as text for the record;
- `apply_threads(threads) -> dict`: the intra-op thread count asked for and in force;
- `info() -> dict`: framework version and GPU names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType

from mnist_bench.core.config import (
    BACKENDS as NAMES,  # one list of backends, kept with the settings
)


def get(name: str) -> ModuleType:
    """The module of backend `name`; ValueError for an unknown one."""
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(NAMES)}")
    return importlib.import_module(f"mnist_bench.execute.backends.{name}")


FRAMEWORK_THREADS_ENV = "MNIST_BENCH_FRAMEWORK_THREADS"


def framework_threads() -> bool:
    """Whether `MNIST_BENCH_FRAMEWORK_THREADS=1` leaves each framework its own thread pools when
    `--threads` is not given (what mnist-bench's defaults are measured against:
    `benchmarks/process_spread.py`); each record's `threads` says what was in force."""
    return os.environ.get(FRAMEWORK_THREADS_ENV) == "1"


def default_threads() -> int:
    """Intra-op threads when `--threads` is not given (PyTorch, and TensorFlow on a CPU): one
    fewer than the usable cores, at least one, so the Python thread that drives each step keeps
    a core. Measured on 2 cores: PyTorch's own default (one per core) spins every core, and
    beside one busy process its steady epoch went from 1.36 s to 109 s, with one thread 1.34 s
    (`benchmarks/contention.py --backend torch`); TensorFlow with one intra-op and one inter-op
    thread ran cnn-fast's fresh processes 1.09x apart against 1.27x with its own pools (but a
    third slower), two-dense alike either way (`benchmarks/process_spread.py`;
    docs/methodology.md)."""
    from mnist_bench.core.environment import usable_cores

    return max(1, usable_cores() - 1)


def set_keras_backend(name: str) -> None:
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class KeepOut(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import NAME` (and its submodules) fail as if NAME were not installed.

    `find_spec` answers with a spec without origin (so `importlib.util.find_spec` callers such as
    torch._dynamo skip it) whose loader refuses to create the module.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or fullname.startswith(self.name + "."):
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(
            f"No module named {spec.name!r} (kept out of this worker)", name=spec.name
        )

    def exec_module(self, module) -> None:  # never reached: create_module refuses
        raise ModuleNotFoundError(module.__name__)


def keep_out_tensorflow() -> None:
    """keras.utils.set_random_seed imports TensorFlow whenever it is installed (about 2 s and
    600 MiB); a JAX or PyTorch worker has no TensorFlow op to seed, so keep it out. A finder
    that refuses it, not `sys.modules["tensorflow"] = None`: Keras' preprocessing layers test
    `"tensorflow" in sys.modules` and would then try to use it."""
    sys.meta_path.insert(0, KeepOut("tensorflow"))


def let_in_tensorflow() -> None:
    """Undo `keep_out_tensorflow`: a user's model may need TensorFlow on any backend (Keras'
    `FlaxLayer` asks `tf.inside_function()` when it builds)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, KeepOut)]
