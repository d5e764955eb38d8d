"""Inference latency per variant with pytest-benchmark, on the backend in KERAS_BACKEND.

One process serves one Keras backend, so pick it per invocation (default: jax):

    KERAS_BACKEND=torch .venv/bin/pytest tests/benchmarks --benchmark-enable --benchmark-autosave

The default test run executes each benchmark once (benchmarks disabled) to prove it works.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

BACKEND = os.environ.setdefault("KERAS_BACKEND", "jax")
pytest.importorskip(BACKEND, reason=f"{BACKEND} not installed")
keras = pytest.importorskip("keras")

from mnist_bench import data, models  # noqa: E402


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return data.load("mnist").x_test[:32]


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("name", models.names())
def test_inference_latency(benchmark, images, name, batch):
    variant = models.get(name)
    keras.utils.set_random_seed(0)
    model = variant.build()
    x = data.preprocess(images[:batch], variant.input_shape)
    model.predict_on_batch(x)  # warm-up: tracing and compilation stay out of the timing
    benchmark.group = f"{keras.backend.backend()} batch {batch}"
    benchmark.extra_info.update(backend=keras.backend.backend(), variant=name, batch_size=batch)
    out = benchmark(model.predict_on_batch, x)
    probs = np.asarray(out)
    assert probs.shape == (batch, 10) and np.isfinite(probs).all()
