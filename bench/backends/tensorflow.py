"""TensorFlow: op determinism by `enable_op_determinism`, threads by `tf.config.threading`."""

from __future__ import annotations

from typing import Any

from mnist_bench.backends import set_keras_backend


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
    in_force = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    return {"requested": threads, "intra_op": in_force}


def info() -> dict[str, Any]:
    import tensorflow as tf

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append(details.get("device_name", dev.name))
    return {"version": tf.__version__, "gpus": gpus}
