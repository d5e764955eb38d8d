"""What a built model is, in the worker: the checks a variant's model must pass, and the digest
of its architecture that a record's job carries (`Job.model_digest`).

The digest covers each layer's class name, configuration and weight shapes, the model's wiring,
its input and output shapes and its parameter count; not the weights, nor the dtype policy (a
setting of the job), nor any name (layer and
model names are replaced by their position, so Keras's per-session `dense_3` does not count),
nor the function that built it. A wrapped PyTorch or Flax module counts by its printed
structure (`Linear(in_features=784, out_features=64, bias=True)`), since its Keras
configuration holds its weights or cannot be serialized. The same model gives the same digest
on every backend.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

CLASSES = 10  # MNIST and its look-alikes


class ModelError(Exception):
    """A variant's function returned something the benchmark cannot train: one line, why."""


def input_shape(model: Any) -> tuple[int, ...]:
    """The per-sample input shape the data is reshaped to, after checking `model` is a
    single-input Keras model with `CLASSES` outputs.

    Raises:
        ModelError: not a `keras.Model`, no known input shape, or not 10 classes out.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ModelError(f"it returned a {type(model).__name__}, not a keras.Model")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ModelError(
            "the model has no input shape: build it on keras.Input(...) (Sequential or functional)"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs, not 1")
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ModelError(f"the model's input shape {shape} is not fixed")
    out = tuple(outputs[0].shape[1:])
    if out != (CLASSES,):
        raise ModelError(f"the model's output shape is {out}, not ({CLASSES},): one per class")
    return tuple(int(d) for d in shape)


def leaf_layers(model: Any) -> list[Any]:
    """The layers inside `model` that hold no layers themselves, depth first (what FLOPs are
    counted over and a layer is frozen among)."""
    return [layer for layer in _layers(model)[1:] if not getattr(layer, "layers", None)]


def _layers(layer: Any) -> list[Any]:
    """`layer` and every layer inside it, depth first."""
    out = [layer]
    for inner in getattr(layer, "layers", None) or []:
        out += _layers(inner)
    return out


def _config(layer: Any) -> Any:
    module = getattr(layer, "module", None)
    if module is not None:  # TorchModuleWrapper, FlaxLayer: the wrapped module's structure
        return {"module": repr(module)}
    try:
        return layer.get_config()
    except Exception:  # a layer of the user's that cannot say: its class and shapes count
        return None


# Configuration keys that are settings of the run, not of the architecture: the dtype policy is
# the `dtype_policy` knob, already part of the job.
SETTING_KEYS = frozenset({"dtype", "dtype_policy"})


def _canonical(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            str(k): _canonical(v, names) for k, v in value.items() if str(k) not in SETTING_KEYS
        }
    if isinstance(value, list | tuple):
        return [_canonical(v, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return repr(value)


def model_digest(model: Any) -> str:
    """16 hex digits of SHA-256 over the model's architecture (see the module's docstring)."""
    layers = _layers(model)
    names = {layer.name: f"#{i}" for i, layer in reversed(list(enumerate(layers)))}
    topology = None
    if not any(getattr(layer, "module", None) is not None for layer in layers):
        try:  # the wiring of a functional model; each layer's own config is taken below
            topology = model.get_config()
        except Exception:  # a layer of the user's that cannot say: its class and shapes count
            topology = None
    if isinstance(topology, dict):
        for item in topology.get("layers") or []:
            if isinstance(item, dict):
                item.pop("config", None)
    described = {
        "layers": [
            {
                "class": type(layer).__qualname__,
                "config": _config(layer) if layer is not model else None,
                "weights": [list(w.shape) for w in layer.weights],
            }
            for layer in layers
        ],
        "topology": topology,
        "inputs": [list(t.shape) for t in model.inputs],
        "outputs": [list(t.shape) for t in model.outputs],
        "params": int(model.count_params()),
    }
    text = json.dumps(_canonical(described, names), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
