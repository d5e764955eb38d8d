"""A PyTorch module as a variant, through `keras.layers.TorchModuleWrapper` (torch backend only).

    mnist-bench run --variant examples/torch_module.py:torch_mlp --backend torch

The module is defined inside the function, so that naming the variant imports no PyTorch.
"""

import keras
from mnist_bench.models import variant


@variant(
    description="torch.nn: 784 -> Linear(128) -> ReLU -> Linear(10) -> softmax, wrapped",
    backends=("torch",),
    epochs=3,
    batch_size=128,
)
def torch_mlp(hidden: int = 128) -> keras.Model:
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Linear(28 * 28, hidden)
            self.out = nn.Linear(hidden, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.hidden(torch.flatten(x, 1)))
            return torch.softmax(self.out(x), dim=-1)

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.TorchModuleWrapper(MLP(), output_shape=(None, 10))(inputs)
    return keras.Model(inputs, outputs)
