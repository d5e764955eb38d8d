"""Why TensorFlow's epochs jump: the seed's two-dense, bare Keras, one suspect changed at a time.

Each run is a fresh process training two-dense (batch 32, full MNIST unless --train-limit) for
EPOCHS epochs under one condition; rounds interleave the conditions in a shuffled order so a
slow drift of the machine hits all of them alike. Around each run the same `ContentionProbe` as
a record's measures the CPU share other processes and the hypervisor took.

Conditions (--condition, repeatable; default: all):
  default      Keras as shipped
  threads-1-2  tf.config.threading: inter-op 1, intra-op 2 (set together, before any op)
  threads-1-1  inter-op 1, intra-op 1
  data-fixed   Keras' input pipeline with tf.data autotuning off (parallel map and prefetch at
               fixed sizes); the same batches in the same order
  data-1       tf.data on a private pool of one thread, no intra-op parallelism inside it
  no-gc        Python's garbage collector off during fit
  no-onednn    TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's plain Eigen kernels)
  jax          the same script on JAX (for reference)
  torch        the same script on PyTorch (for reference)
Several join with +: `threads-1-2+no-gc`, `jax+no-gc`.

    python benchmarks/tf_epochs.py [--rounds 3] [--epochs 8] [--condition default ...] [--json OUT]

A condition fixes the jumps when its steady epochs (all but the first) have a small spread in
every run; the report gives each run's epochs, the steady median, CV and slowest/fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONDITIONS = (
    "default",
    "threads-1-2",
    "threads-1-1",
    "data-fixed",
    "data-1",
    "no-gc",
    "no-onednn",
    "jax",
    "torch",
)

CHILD = r"""
import gc, json, os, sys, time
import numpy as np
cond, epochs, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) or None
parts = set(cond.split("+"))
import keras
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    if "threads-1-2" in parts:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(2)
    elif "threads-1-1" in parts:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    if parts & {"data-fixed", "data-1"}:
        from keras.src.trainers.data_adapters import array_data_adapter as ada
        original = ada.ArrayDataAdapter.get_tf_dataset
        def patched(self):
            options = tf.data.Options()
            if "data-fixed" in parts:
                options.autotune.enabled = False
            else:
                options.threading.private_threadpool_size = 1
                options.threading.max_intra_op_parallelism = 1
            return original(self).with_options(options)
        ada.ArrayDataAdapter.get_tf_dataset = patched
with np.load(sys.argv[4], allow_pickle=False) as f:
    x = f["x_train"][:limit].reshape(-1, 784).astype("float32") / 255.0
    y = f["y_train"][:limit]
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(100, activation="relu"),
                          keras.layers.Dense(10, activation="sigmoid")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
seconds, cpu = [], []
where = []  # per epoch: to the first batch, the longest gap between batches (and its batch),
# and from the last batch to the epoch's end
class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.c0 = time.perf_counter(), sum(os.times()[:2])
        self.stamps = []
    def on_train_batch_begin(self, batch, logs=None):
        self.stamps.append(time.perf_counter())
    def on_epoch_end(self, epoch, logs=None):
        float(logs["loss"])
        end = time.perf_counter()
        seconds.append(end - self.t0)
        cpu.append(sum(os.times()[:2]) - self.c0)
        s = self.stamps
        gaps = [b - a for a, b in zip(s, s[1:])]
        worst = max(range(len(gaps)), key=gaps.__getitem__) if gaps else -1
        where.append([s[0] - self.t0 if s else None, gaps[worst] if gaps else None, worst,
                      end - s[-1] if s else None])
if "no-gc" in parts:
    gc.collect(); gc.disable()
model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[Timer()])
w = b"".join(np.ascontiguousarray(v).tobytes() for v in model.get_weights())
import hashlib
digest = hashlib.sha256(w).hexdigest()[:12]
print(json.dumps({"seconds": seconds, "cpu": cpu, "where": where, "weights": digest}))
"""


def condition_type(text: str) -> str:
    if not set(text.split("+")) <= set(CONDITIONS):
        raise argparse.ArgumentTypeError(f"unknown condition in {text!r}: {', '.join(CONDITIONS)}")
    return text


def run_one(condition: str, epochs: int, limit: int) -> dict:
    from mnist_bench.execute.training import ContentionProbe

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    parts = set(condition.split("+"))
    env["KERAS_BACKEND"] = next((b for b in ("jax", "torch") if b in parts), "tensorflow")
    if "no-onednn" in parts:
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    data = str(ROOT / "bench" / "data" / "mnist.npz")
    with ContentionProbe() as probe:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, condition, str(epochs), str(limit), data],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(condition=condition, other_share=probe.share, steal=probe.steal)
    steady = result["seconds"][1:]
    median = statistics.median(steady)
    result["steady_median"] = median
    result["cv"] = statistics.stdev(steady) / statistics.fmean(steady)
    result["max_min"] = max(steady) / min(steady)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-limit", type=int, default=0, help="0: all 60,000")
    parser.add_argument(
        "--condition",
        action="append",
        type=condition_type,
        help="one of the conditions, or several joined by + (jax+no-gc)",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the interleaving order")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    conditions = args.condition or list(CONDITIONS)
    order = random.Random(args.seed)
    runs = []
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    for r in range(args.rounds):
        round_conditions = list(conditions)
        order.shuffle(round_conditions)
        for condition in round_conditions:
            res = run_one(condition, args.epochs, args.train_limit)
            res["round"] = r
            runs.append(res)
            epochs = " ".join(f"{s:.2f}" for s in res["seconds"])
            stalls = "; ".join(
                f"e{i + 1} first {w[0]:.2f} gap {w[1]:.2f}@{w[2]} last {w[3]:.2f}"
                for i, w in enumerate(res["where"])
                if w[1] is not None and max(w[0], w[1], w[3]) > 0.2
            )
            print(
                f"round {r} {condition:12s} cv {res['cv']:6.1%} max/min {res['max_min']:.2f} "
                f"others {res['other_share']:.0%} steal {res['steal'] or 0:.1%} "
                f"w {res['weights']} epochs {epochs}"
                + (f"\n    stalls: {stalls}" if stalls else ""),
                flush=True,
            )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'condition':12s} runs  steady median s (min-max over runs)  CV (max)  max/min (max)")
    for condition in conditions:
        mine = [r for r in runs if r["condition"] == condition]
        medians = [r["steady_median"] for r in mine]
        print(
            f"{condition:12s} {len(mine):4d}  {statistics.median(medians):.3f} "
            f"({min(medians):.3f}-{max(medians):.3f})  "
            f"{statistics.median(r['cv'] for r in mine):6.1%} ({max(r['cv'] for r in mine):.1%})  "
            f"{statistics.median(r['max_min'] for r in mine):.2f} "
            f"({max(r['max_min'] for r in mine):.2f})"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
