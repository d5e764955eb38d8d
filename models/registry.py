"""The variant registry: a name -> small function that returns an uncompiled Keras model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mnist_bench.core.config import TrainSettings
from mnist_bench.core.errors import UserError

_REGISTRY: dict[str, Variant] = {}


@dataclass(frozen=True)
class Variant:
    """A registered model variant.

    Attributes:
        name: the name users type (`--variant two-dense`).
        build: returns a fresh, uncompiled `keras.Model`; imports Keras itself, when called.
        input_shape: per-sample input shape the data is reshaped to, e.g. (784,) or (28, 28, 1).
        defaults: training settings registered with the variant.
        description: one line for `mnist-bench list`.
        default: run when no variant is named (the seed notebook's three are).
    """

    name: str
    build: Callable[[], Any]
    input_shape: tuple[int, ...]
    defaults: TrainSettings
    description: str
    default: bool = False


def register(
    name: str,
    *,
    input_shape: tuple[int, ...],
    description: str,
    default: bool = False,
    **defaults: Any,
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register a model builder under `name`, with its training defaults (epochs, optimizer...)."""

    def decorate(build: Callable[[], Any]) -> Callable[[], Any]:
        if name in _REGISTRY:
            raise ValueError(f"variant {name!r} is registered twice")
        _REGISTRY[name] = Variant(
            name, build, tuple(input_shape), TrainSettings(**defaults), description, default
        )
        return build

    return decorate


def names() -> list[str]:
    return list(_REGISTRY)


def default_names() -> list[str]:
    """What `run` trains when no variant is named."""
    return [name for name, v in _REGISTRY.items() if v.default]


def get(name: str) -> Variant:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown variant {name!r}; valid: {', '.join(_REGISTRY)}") from None
