"""Convolutional variants (the seed's future work)."""
