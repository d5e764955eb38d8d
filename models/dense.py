"""The seed notebook's three dense networks, as partials of one builder."""

from __future__ import annotations

from functools import partial

from mnist_bench.models.registry import register


def mlp(hidden: tuple[int, ...], *, image_input: bool = False):
    """Dense layers with ReLU, then Dense(10, sigmoid), exactly as the seed notebook has them.

    Args:
        hidden: widths of the hidden ReLU layers (empty for a single Dense layer).
        image_input: take 28x28 images and Flatten them, instead of 784-vectors.
    """
    import keras

    layers = [keras.Input((28, 28) if image_input else (784,))]
    if image_input:
        layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(width, activation="relu") for width in hidden]
    layers.append(keras.layers.Dense(10, activation="sigmoid"))
    return keras.Sequential(layers)


register("single-dense", input_shape=(784,), default=True, description="784 -> Dense(10, sigmoid)")(
    partial(mlp, ())
)
register(
    "two-dense",
    input_shape=(784,),
    default=True,
    description="784 -> Dense(100, relu) -> Dense(10, sigmoid)",
)(partial(mlp, (100,)))
register(
    "flatten-dense",
    input_shape=(28, 28),
    default=True,
    description="28x28 -> Flatten -> Dense(100, relu) -> Dense(10, sigmoid)",
)(partial(mlp, (100,), image_input=True))
