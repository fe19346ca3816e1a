"""Metrics and validation: numbers, no plotting."""

from .metrics import angle_difference, rowwise_correlation

__all__ = ["angle_difference", "rowwise_correlation"]
