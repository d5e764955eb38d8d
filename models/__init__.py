"""The model variants. Importing this package registers every variant; no framework is imported."""

import importlib

from mnist_bench.models.registry import Variant, default_names, get, names, register
from mnist_bench.plan.variants import variant  # metadata for a variant of the user's own

# Registration order is listing order: the seed notebook's variants first.
for _module in ("dense", "cnn"):
    importlib.import_module(f"mnist_bench.models.{_module}")

__all__ = ["Variant", "default_names", "get", "names", "register", "variant"]
