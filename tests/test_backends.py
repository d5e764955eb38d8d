"""Backends as modules: importing them starts no framework; each configures its own worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, backend_params
from mnist_bench.execute import backends
from mnist_bench.execute.backends import FRAMEWORK_THREADS_ENV


def test_importing_the_backends_starts_no_framework():
    code = (
        "import sys, mnist_bench.execute.backends as b\n"
        "mods = [b.get(n) for n in b.NAMES]\n"
        "loaded = [m for m in ('tensorflow', 'jax', 'torch', 'keras') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'theano'; valid: tensorflow, jax, torch"):
        backends.get("theano")


# TensorFlow takes about 14 s to start and describe itself: the slow run
@pytest.mark.parametrize("backend", backend_params(slow=("tensorflow",)))
def test_each_backend_configures_and_describes_its_own_worker(backend):
    """In a fresh process, as a worker: KERAS_BACKEND set before Keras, TensorFlow kept out of
    the JAX and PyTorch workers, threads and determinism reported."""
    code = (
        "import os, sys, mnist_bench.execute.backends as b\n"
        f"m = b.get({backend!r}); m.configure(1)\n"
        f"assert os.environ['KERAS_BACKEND'] == {backend!r}\n"
        "switched = m.enable_determinism(); threads = m.apply_threads(1); info = m.info()\n"
        "assert switched and threads['requested'] == 1 and info['version'], (switched, info)\n"
        f"if {backend!r} != 'tensorflow':\n"
        "    try:\n"
        "        import tensorflow\n"
        "    except ModuleNotFoundError as exc:\n"
        "        assert 'kept out' in str(exc)\n"
        "    else:\n"
        "        raise AssertionError('tensorflow was not kept out')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


CORES = [({0}, 1), ({0, 1}, 1), (set(range(8)), 7)]  # usable cores, default intra-op threads


def test_pytorch_default_threads_leave_a_core_free():
    """Without --threads, PyTorch gets one intra-op thread fewer than the usable cores (its own
    default, one per core, collapsed 80x beside a busy process on 2 cores); the record says so.
    Each affinity in turn in one PyTorch process (the count is set again at each call)."""
    pytest.importorskip("torch", reason="torch not installed")
    code = (
        "import os, mnist_bench.execute.backends as b\n"
        "m = b.get('torch'); m.configure(None)\n"
        f"for cores in {[sorted(c) for c, _ in CORES]!r}:\n"
        "    os.sched_getaffinity = lambda pid, cores=cores: set(cores)\n"
        "    default, asked = m.apply_threads(None), m.apply_threads(3)\n"
        "    print(default['requested'], default['intra_op'], asked['intra_op'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"None {expected} 3" for _, expected in CORES]


@pytest.mark.parametrize(("cores", "own", "flags", "intra_op"), [
    ({0, 1}, None, "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1", 1),
    ({0, 1}, "1", "", "default"),  # MNIST_BENCH_FRAMEWORK_THREADS=1: JAX's own pool
    (set(range(8)), None, "", "default"),  # more cores: JAX's own pool
])  # fmt: skip
def test_jax_on_two_cores_gets_one_eigen_thread(cores, own, flags, intra_op):
    """Without --threads, on 2 usable cores, XLA's Eigen pool is one thread (its own pool beside
    the dispatching Python thread made processes 1.31x apart); the record says what was in force.
    Configured in a fresh process, as the worker does, before JAX starts."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", FRAMEWORK_THREADS_ENV)}
    if own:
        env[FRAMEWORK_THREADS_ENV] = own
    code = (
        "import os, mnist_bench.execute.backends as b\n"
        f"os.sched_getaffinity = lambda pid: {sorted(cores)!r}\n"
        "m = b.get('jax'); m.configure(None)\n"
        "print(repr(os.environ.get('XLA_FLAGS', ''))); print(m.apply_threads(None))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr
    shown_flags, threads = out.stdout.splitlines()
    assert shown_flags == repr(flags)
    assert threads == repr({"requested": None, "intra_op": intra_op})


def test_framework_threads_leave_pytorch_its_own_pool():
    """MNIST_BENCH_FRAMEWORK_THREADS=1 without --threads: PyTorch keeps its own count (one per
    core here), not mnist-bench's default; --threads still wins."""
    pytest.importorskip("torch", reason="torch not installed")
    code = (
        "import os, torch, mnist_bench.execute.backends as b\n"
        "own = torch.get_num_threads()\n"
        "m = b.get('torch'); m.configure(None)\n"
        "print(m.apply_threads(None)['intra_op'] == own, m.apply_threads(3)['intra_op'])\n"
    )
    env = {**os.environ, FRAMEWORK_THREADS_ENV: "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "3"]


def test_peak_memory_without_the_resource_module(monkeypatch):
    """Windows has no `resource`: the fallback (psutil) still gives a positive figure."""
    import psutil  # imports `resource` itself on Linux: load it before hiding it
    from mnist_bench.execute import training

    psutil.Process().memory_info()
    with_resource = training.peak_rss_mib()
    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` now fails
    without = training.peak_rss_mib()
    assert with_resource > 0 and without > 0
