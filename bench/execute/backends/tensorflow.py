"""TensorFlow: op determinism by `enable_op_determinism`, threads by `tf.config.threading`."""

from __future__ import annotations

from typing import Any

from mnist_bench.execute.backends import default_threads, framework_threads, set_keras_backend


def configure(threads: int | None) -> None:
    set_keras_backend("tensorflow")


def enable_determinism() -> list[str]:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return ["tf.config.experimental.enable_op_determinism"]


def apply_threads(threads: int | None) -> dict[str, Any]:
    """`threads` intra-op threads where asked (the inter-op pool left to TensorFlow). Without
    it, on a machine without a GPU: `default_threads()` intra-op threads (one fewer than the
    usable cores) and one inter-op thread. On 2 cores that kept cnn-fast's fresh processes
    1.09x apart against 1.27x with TensorFlow's own pools (one thread per core each), at a
    third less speed (`--threads 2` buys it back); two-dense was alike either way. The dense
    networks train the same weights under either setting (a convolution's sums may be taken in
    another order: other weights, the same accuracy; docs/methodology.md). With a GPU, or
    `MNIST_BENCH_FRAMEWORK_THREADS=1`, TensorFlow's own choice (not measured with a GPU). 0 in
    the record's place means TensorFlow's own choice."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    elif not framework_threads() and not tf.config.list_physical_devices("GPU"):
        tf.config.threading.set_intra_op_parallelism_threads(default_threads())
        tf.config.threading.set_inter_op_parallelism_threads(1)
    intra = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "default"
    return {
        "requested": threads,
        "intra_op": intra,
        "inter_op": inter,
        "tf_data_autotune": steady_input_pipeline(),
    }


def steady_input_pipeline() -> bool | None:
    """Turn tf.data's autotuning off in the pipeline Keras builds from NumPy arrays; returns
    whether autotuning is on (False), or None where this Keras has no such pipeline to adjust.

    With autotuning on, an epoch sometimes stalls for 1-2.5 s before its first batch, with the
    CPU idle (the iterator of the epoch before is torn down with its autotuning thread): on 2
    cores the seed's two-dense then takes 5 s an epoch instead of 2.5, at random, even on an
    idle machine (`benchmarks/tf_epochs.py`; docs/methodology.md). Off, the map and prefetch
    run at fixed sizes: the same batches in the same order, the same weights."""
    import tensorflow as tf

    try:
        from keras.src.trainers.data_adapters import array_data_adapter
    except ImportError:  # another Keras: left as it is, and the record says so
        return None
    adapter = array_data_adapter.ArrayDataAdapter
    original = adapter.get_tf_dataset
    if getattr(original, "autotune_off", False):
        return False

    def get_tf_dataset(self):
        options = tf.data.Options()
        options.autotune.enabled = False
        return original(self).with_options(options)

    get_tf_dataset.autotune_off = True  # type: ignore[attr-defined]
    adapter.get_tf_dataset = get_tf_dataset
    return False


def info() -> dict[str, Any]:
    import tensorflow as tf

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append(details.get("device_name", dev.name))
    return {"version": tf.__version__, "gpus": gpus}
