"""A Flax (linen) module as a variant, through `keras.layers.FlaxLayer` (JAX backend only).

    pip install flax
    mnist-bench run --variant examples/flax_module.py:flax_mlp --backend jax

The module is defined inside the function, so that naming the variant imports no Flax.
"""

import keras
from mnist_bench.models import variant


@variant(
    description="flax.linen: 784 -> Dense(128) -> relu -> Dense(10) -> softmax, wrapped",
    backends=("jax",),
    epochs=3,
    batch_size=128,
)
def flax_mlp(hidden: int = 128) -> keras.Model:
    import flax.linen as nn

    class MLP(nn.Module):
        width: int

        @nn.compact
        def __call__(self, x):
            x = x.reshape((x.shape[0], -1))
            x = nn.relu(nn.Dense(self.width)(x))
            return nn.softmax(nn.Dense(10)(x))

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.FlaxLayer(MLP(width=hidden))(inputs)
    return keras.Model(inputs, outputs)
