"""The seed's two-dense trained by a bare Keras script: the baseline for harness overhead.

Usage: KERAS_BACKEND=jax python benchmarks/bare_keras.py EPOCHS [TRAIN_LIMIT]
    -> JSON list of epoch seconds
       KERAS_BACKEND=jax python benchmarks/bare_keras.py EPOCHS [TRAIN_LIMIT] --alternate
    -> JSON {"bare": [...], "harness": [...]}: one process, one model, EPOCHS + 1 epochs timed
       by a bare timer and as many timed by mnist-bench's own clock callback (its timing windows,
       and the test accuracy it takes after each epoch outside the timed region), one `fit` call
       an epoch, alternating (A B, B A, ...); the first epoch of each is a warm-up

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
import types

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from mnist_bench.execute import backends  # noqa: E402  (imports no framework)

args = [a for a in sys.argv[1:] if a != "--alternate"]
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
    limit = int(args[1]) if len(args) > 1 else None
    x_train = f["x_train"][:limit].reshape(-1, 784).astype("float32") / 255.0
    y_train = f["y_train"][:limit]
    test_limit = 500 if limit else None  # as overhead.py's harness runs
    x_test = f["x_test"][:test_limit].reshape(-1, 784).astype("float32") / 255.0
    y_test = f["y_test"][:test_limit]

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


if "--alternate" not in sys.argv:
    model.fit(
        x_train, y_train, epochs=int(args[0]), batch_size=32, verbose=0, callbacks=[EpochTimer()]
    )
    print(json.dumps(seconds))
    sys.exit(0)

# The harness's side: the worker's clock (timing windows on) and, after each epoch, the test
# accuracy it takes outside the timed region (mnist_bench.execute.training).
from mnist_bench.execute.training import Windows, _predict_classes, clock_callback  # noqa: E402

steps = -(-len(x_train) // 32)
kept = types.SimpleNamespace(window_seconds=[], window_samples=[], epoch_cpu_seconds=[])
clock = Windows(kept, steps, 32, len(x_train), cut=True, slowdown=0.0)
harness = []


def epoch_done(model, epoch, loss, epoch_seconds):
    harness.append(epoch_seconds)
    float(np.mean(_predict_classes(model, x_test) == y_test))


sides = {"A": EpochTimer(), "B": clock_callback(keras, clock, epoch_done)}
order = "AB"
for i in range(int(args[0]) + 1):
    for name in order if i % 2 == 0 else order[::-1]:
        model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0, callbacks=[sides[name]])
print(json.dumps({"bare": seconds, "harness": harness}))
