"""TensorFlow: op determinism by `enable_op_determinism`, threads by `tf.config.threading`."""

from __future__ import annotations

from typing import Any

from mnist_bench.execute.backends import set_keras_backend


def configure(threads: int | None) -> None:
    set_keras_backend("tensorflow")


def enable_determinism() -> list[str]:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return ["tf.config.experimental.enable_op_determinism"]


def apply_threads(threads: int | None) -> dict[str, Any]:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    # 0 means TensorFlow's own choice (one per core for each pool). The inter-op pool is left
    # to it: on 2 cores a small model's step keeps about one core busy whatever the pools, and
    # the slow steady epochs seen there followed CPU time other processes took, not the pools
    # (issue 12, point 10: own CPU seconds per epoch stayed level while wall time doubled).
    intra = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "default"
    return {"requested": threads, "intra_op": intra, "inter_op": inter}


def info() -> dict[str, Any]:
    import tensorflow as tf

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append(details.get("device_name", dev.name))
    return {"version": tf.__version__, "gpus": gpus}
