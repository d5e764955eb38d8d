"""The model variants. Importing this package registers every variant; no framework is imported."""

from models import cnn, dense  # noqa: F401  (registration side effects)
from models.registry import Variant, get, names, register

__all__ = ["Variant", "get", "names", "register"]
