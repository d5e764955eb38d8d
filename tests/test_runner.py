"""Real runs, end to end, on small subsets of MNIST, for every installed backend (a crash in a
worker with the fake worker: what is tested is the isolation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BACKEND, FAKE_WORKER, backend_params, needs_backend, only_run, run_cli


# JAX's in the default run; TensorFlow's and PyTorch's in the slow one (the notebook, the gate
# and the determinism runs train on them there too).
@pytest.mark.parametrize("backend", backend_params(slow=("tensorflow", "torch")))
def test_real_short_fit(tmp_path, backend):
    out = run_cli(
        "run",
        "-b",
        backend,
        "-v",
        "two-dense",
        "--epochs",
        "2",
        "--train-limit",
        "3000",
        "--test-limit",
        "2000",
        "--infer-batch-sizes",
        "1,256",
        "--results-dir",
        str(tmp_path),
        env={"MNIST_BENCH_QUICK_MEASURE": "0"},  # the full latency loop: 200 queries or more
    )
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    assert run.status == "complete" and run.schema_version == 2
    (record,) = run.records
    assert record.status == "ok" and record.backend == backend and record.device == "cpu"
    assert record.test_accuracy > 0.8  # chance is 0.1
    cm = np.array(record.confusion_matrix)
    assert cm.shape == (10, 10) and cm.sum() == 2000
    assert record.test_accuracy == np.trace(cm) / cm.sum()
    assert len(record.epoch_seconds) == 2 and record.params == 79510
    assert record.accuracy_curve[-1] == record.test_accuracy
    assert [i["batch_size"] for i in record.inference] == [1, 256]
    assert record.latency_ms["queries"] >= 200
    assert record.flops_per_train_sample == 3 * 2 * (784 * 100 + 100 * 10)
    assert len(record.weights_sha256) == 64
    figures = sorted(p.name for p in (tmp_path / run.run_id).iterdir())
    assert figures == [
        "two-dense-curves.png",
        f"two-dense-{backend}-cpu-seed0-confusion.png",
        f"two-dense-{backend}-cpu-seed0-errors.png",
    ]
    assert backend in run.environment["backends"]
    if backend == "tensorflow":  # the input pipeline as tests/test_tf_pipeline.py tests it
        assert record.threads["tf_data_autotune"] is False


@needs_backend
def test_crash_is_isolated(tmp_path):
    out = run_cli(
        "run",
        "-b",
        BACKEND,
        "-v",
        "two-dense",
        "-v",
        "single-dense",
        "--epochs",
        "1",
        "--train-limit",
        "1000",
        "--test-limit",
        "500",
        "--infer-batch-sizes",
        "8",
        "--results-dir",
        str(tmp_path),
        "--no-figures",
        env={**FAKE_WORKER, "MNIST_BENCH_INJECT_FAULT": "crash@two-dense"},
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    run = only_run(tmp_path)
    by_variant = {r.variant: r for r in run.records}
    assert by_variant["two-dense"].status == "failed"
    assert "SIGSEGV" in by_variant["two-dense"].error
    assert by_variant["single-dense"].status == "ok"
    assert run.status == "complete"


def test_missing_backend_is_skipped(tmp_path, monkeypatch):
    from mnist_bench.core import environment

    monkeypatch.setattr(environment, "installed_backends", lambda: [BACKEND])
    from mnist_bench.cli import main

    missing = next(b for b in ("torch", "tensorflow", "jax") if b != BACKEND)
    code = main(["run", "-b", missing, "-v", "two-dense", "--results-dir", str(tmp_path)])
    assert code == 1
    (record,) = only_run(tmp_path).records
    assert record.status == "skipped" and "not installed" in record.error


@needs_backend
def test_gpu_requested_without_gpu(tmp_path):
    out = run_cli(
        "run",
        "-b",
        BACKEND,
        "-v",
        "single-dense",
        "--device",
        "gpu",
        "--epochs",
        "1",
        "--train-limit",
        "500",
        "--results-dir",
        str(tmp_path),
    )
    assert out.returncode == 1
    assert (
        out.stderr.strip().splitlines()[-1] == f"error: no record ran: no GPU visible to {BACKEND}"
    )
    (record,) = only_run(tmp_path).records
    assert record.status == "skipped"
    assert json.loads(json.dumps(record.to_dict()))["error"] == f"no GPU visible to {BACKEND}"


@needs_backend
@pytest.mark.slow  # a real run on Fashion-MNIST (about 15 s)
def test_fashion_mnist_run_carries_class_names(tmp_path):
    from mnist_bench import data

    if not data.FASHION_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    out = run_cli(
        "run",
        "-b",
        BACKEND,
        "-v",
        "two-dense",
        "--data",
        "fashion-mnist",
        "--epochs",
        "1",
        "--train-limit",
        "2000",
        "--test-limit",
        "1000",
        "--infer-batch-sizes",
        "8",
        "--results-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    assert run.records[0].dataset == "fashion-mnist" and run.records[0].test_accuracy > 0.6
    assert run.environment["dataset"]["class_names"][0] == "T-shirt/top"
    assert len(run.environment["dataset_digests"]["x_train"]) == 64
    figure = tmp_path / run.run_id / f"two-dense-{BACKEND}-cpu-seed0-confusion.png"
    assert figure.stat().st_size > 0
