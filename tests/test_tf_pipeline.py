"""TensorFlow's input pipeline with autotuning off: the same batches, the same weights. That
each record says so (`threads.tf_data_autotune`) is asserted by the slow run's real
TensorFlow fit (tests/test_runner.py::test_real_short_fit), which trains on TensorFlow anyway."""

import json
import subprocess
import sys

import pytest
from conftest import INSTALLED, ROOT

pytestmark = pytest.mark.skipif("tensorflow" not in INSTALLED, reason="tensorflow not installed")

TRAIN = r"""
import hashlib, json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import keras
from mnist_bench.execute.backends import tensorflow as backend

def train():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((640, 20), dtype=np.float32)
    y = rng.integers(0, 10, 640)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, shuffle=True, verbose=0)
    w = b"".join(np.ascontiguousarray(v).tobytes() for v in model.get_weights())
    return hashlib.sha256(w).hexdigest()

before = train()
state = [backend.steady_input_pipeline(), backend.steady_input_pipeline()]
from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
adapter = ArrayDataAdapter((np.zeros((64, 20), "float32"), np.zeros(64)), batch_size=32,
                           shuffle=True)
autotune = adapter.get_tf_dataset().options().autotune.enabled
print(json.dumps({"before": before, "after": train(), "state": state, "autotune": autotune}))
"""


def test_autotuning_off_trains_the_same_weights_and_is_idempotent():
    out = subprocess.run(
        [sys.executable, "-c", TRAIN], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["state"] == [False, False]  # applied once, and said so both times
    assert found["autotune"] is False  # the pipeline Keras builds now has it off
    assert found["after"] == found["before"]  # the same batches in the same order
