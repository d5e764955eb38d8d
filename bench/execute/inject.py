"""Test hook: train with a known bug (or a harmless change) on purpose, to prove the CI gate.

`MNIST_BENCH_INJECT_BUG` holds comma-separated changes, each `NAME` or `NAME=VALUE`:

- `label_noise=F`: a share F of the training labels replaced by another, random, class;
- `drop_train=F`: train on a random share 1-F of the training set (F of it dropped);
- `unscaled`: training inputs left in 0..255 (the test inputs stay scaled);
- `lr_scale=F`: the learning rate (or schedule) times F;
- `no_shuffle`: `fit` does not shuffle between epochs;
- `freeze=I`: the I-th layer that has weights is frozen (never trained);
- `loss_sum`: the loss summed over the batch instead of averaged;

and the harmless ones, which must not move accuracy beyond seed-to-seed noise:

- `permute_train`: the training set in another (seeded) order;
- `seed_offset=N`: every job trains with seed + N (a different, equally valid, draw).

The training loop calls the hooks of `from_env()` at its data, compile and fit points; with the
variable unset they change nothing. A record trained under an injection carries it
(`Record.injected`), so it can never pass for a real one. Randomness is drawn from the job's
seed, so a job with an injection is as reproducible as one without.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mnist_bench.execute import architecture

ENV = "MNIST_BENCH_INJECT_BUG"
# name -> kind of value: float (a share or factor), int, or None (a flag)
KINDS: dict[str, type | None] = {
    "label_noise": float,
    "drop_train": float,
    "unscaled": None,
    "lr_scale": float,
    "no_shuffle": None,
    "freeze": int,
    "loss_sum": None,
    "permute_train": None,
    "seed_offset": int,
}
HARMLESS = ("permute_train", "seed_offset")
SHARES = ("label_noise", "drop_train")  # in [0, 1)
_SALT = 7919  # keeps the injection's random draws apart from the training's own


def parse(text: str) -> dict[str, Any]:
    """`label_noise=0.05,no_shuffle` -> {"label_noise": 0.05, "no_shuffle": True}.

    Raises:
        ValueError: an unknown name, a missing or bad value, a share outside [0, 1).
    """
    spec: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, eq, raw = item.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ValueError(f"{ENV}: unknown change {name!r} (known: {', '.join(KINDS)})")
        kind = KINDS[name]
        if kind is None:
            if eq:
                raise ValueError(f"{ENV}: {name} takes no value")
            spec[name] = True
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{ENV}: {name} needs a {kind.__name__} value, not {raw!r}") from None
        if name in SHARES and not 0 <= value < 1:
            raise ValueError(f"{ENV}: {name} is a share in [0, 1), not {value}")
        if name == "lr_scale" and not value > 0:
            raise ValueError(f"{ENV}: lr_scale must be above 0, not {value}")
        if name == "freeze" and value < 0:
            raise ValueError(f"{ENV}: freeze names a layer index (0 or more), not {value}")
        spec[name] = value
    return spec


@dataclass(frozen=True)
class Injection:
    """The changes in force (`spec`, empty: none) and the hooks that apply them."""

    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def harmless(self) -> bool:
        return all(name in HARMLESS for name in self.spec)

    def recorded(self) -> dict[str, Any] | None:
        """What a record says it was trained under; None without an injection."""
        return dict(self.spec) if self.spec else None

    def seed(self, seed: int) -> int:
        return seed + int(self.spec.get("seed_offset", 0))

    def data(self, x_train, y_train, seed: int):
        """The training inputs and labels as the changes make them (copies; the cached
        arrays are left alone)."""
        if not self.spec:
            return x_train, y_train
        import numpy as np

        rng = np.random.default_rng([seed, _SALT])
        n = len(y_train)
        if "drop_train" in self.spec:
            keep = max(1, round(n * (1 - self.spec["drop_train"])))
            chosen = np.sort(rng.permutation(n)[:keep])
            x_train, y_train, n = x_train[chosen], y_train[chosen], keep
        if "permute_train" in self.spec:
            order = rng.permutation(n)
            x_train, y_train = x_train[order], y_train[order]
        if "label_noise" in self.spec:
            flip = rng.random(n) < self.spec["label_noise"]
            y_train = y_train.copy()
            shift = rng.integers(1, 10, size=int(flip.sum()))  # never the true class
            y_train[flip] = (y_train[flip] + shift) % 10
        if "unscaled" in self.spec:
            x_train = x_train * np.asarray(255.0, dtype=x_train.dtype)
        return x_train, y_train

    def model(self, model) -> None:
        """Freeze the `freeze`-th layer with weights, before compiling."""
        index = self.spec.get("freeze")
        if index is None:
            return
        weighted = [layer for layer in architecture.leaf_layers(model) if layer.weights]
        if index >= len(weighted):
            raise ValueError(f"{ENV}: freeze={index}, but the model has {len(weighted)} layers")
        weighted[index].trainable = False

    def optimizer(self, optimizer):
        """The optimizer, its learning rate (or schedule's) times `lr_scale`."""
        scale = self.spec.get("lr_scale")
        if scale is None:
            return optimizer
        rate = optimizer._learning_rate  # a float variable, or a schedule object
        if hasattr(rate, "initial_learning_rate"):
            rate.initial_learning_rate *= scale
            if getattr(rate, "warmup_target", None) is not None:
                rate.warmup_target *= scale
        else:
            optimizer.learning_rate = float(optimizer.learning_rate) * scale
        return optimizer

    def loss(self, loss: str):
        if "loss_sum" not in self.spec:
            return loss
        import keras

        return keras.losses.SparseCategoricalCrossentropy(reduction="sum")

    def shuffle(self, shuffle: bool) -> bool:
        return False if "no_shuffle" in self.spec else shuffle


def from_env(environ: dict[str, str] | None = None) -> Injection:
    """The injection `MNIST_BENCH_INJECT_BUG` asks for (none when unset or blank)."""
    text = (os.environ if environ is None else environ).get(ENV, "")
    return Injection(parse(text)) if text.strip() else Injection()
