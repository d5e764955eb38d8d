"""The seed's two-dense trained by a bare Keras script: the baseline for harness overhead.

Usage: KERAS_BACKEND=jax python benchmarks/bare_keras.py EPOCHS [TRAIN_LIMIT]
    -> JSON list of epoch seconds

It trains with the settings the harness's worker puts in force before Keras trains, each
recorded in a record's `threads`, so that the two sides train alike and the ratio is the
harness's own cost: on a machine without a GPU, the thread counts of mnist-bench's defaults
(PyTorch's and TensorFlow's intra-op threads one fewer than the usable cores, TensorFlow's
inter-op pool at one, JAX's Eigen pool at one thread on 2 cores), and on TensorFlow tf.data's
autotuning off (with it on, epochs stall at random on 2 cores: docs/methodology.md).
`BARE_KERAS_AS_SHIPPED=1` keeps Keras' and the frameworks' own defaults.
"""

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from mnist_bench.execute import backends  # noqa: E402  (imports no framework)

AS_HARNESS = os.environ.get("BARE_KERAS_AS_SHIPPED") != "1"
settings = backends.get(os.environ.get("KERAS_BACKEND", "tensorflow"))
if AS_HARNESS:
    settings.configure(None)  # before Keras: JAX's flags
import keras  # noqa: E402

if AS_HARNESS:
    settings.apply_threads(None)  # thread counts; TensorFlow: tf.data autotuning off

with np.load(
    os.path.join(os.path.dirname(__file__), "..", "bench", "data", "mnist.npz"), allow_pickle=False
) as f:
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    x_train = f["x_train"][:limit].reshape(-1, 784).astype("float32") / 255.0
    y_train = f["y_train"][:limit]

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((784,)),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
seconds = []


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        float(logs["loss"])
        seconds.append(time.perf_counter() - self.t0)


model.fit(
    x_train, y_train, epochs=int(sys.argv[1]), batch_size=32, verbose=0, callbacks=[EpochTimer()]
)
print(json.dumps(seconds))
