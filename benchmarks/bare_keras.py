"""The seed's two-dense trained by a bare Keras script: the baseline for harness overhead.

Usage: KERAS_BACKEND=jax python benchmarks/bare_keras.py EPOCHS [TRAIN_LIMIT]
    -> JSON list of epoch seconds

On TensorFlow it turns tf.data's autotuning off as the harness's worker does (the one
setting the harness changes in how Keras trains, recorded as `threads.tf_data_autotune`:
with it on, epochs stall at random on 2 cores, docs/methodology.md), so that the two sides
train the same pipeline and the ratio is the harness's own cost; `BARE_TF_AUTOTUNE=1` keeps
Keras' default.
"""

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

with np.load(
    os.path.join(os.path.dirname(__file__), "..", "bench", "data", "mnist.npz"), allow_pickle=False
) as f:
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    x_train = f["x_train"][:limit].reshape(-1, 784).astype("float32") / 255.0
    y_train = f["y_train"][:limit]

if keras.backend.backend() == "tensorflow" and os.environ.get("BARE_TF_AUTOTUNE") != "1":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from mnist_bench.execute.backends.tensorflow import steady_input_pipeline

    steady_input_pipeline()

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
