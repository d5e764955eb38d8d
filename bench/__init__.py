"""mnist-bench: benchmark Keras 3 model variants across backends and machines."""

__version__ = "0.1.0"
