"""Metrics and validation: numbers, no plotting."""

from .metrics import angle_difference, rowwise_correlation
from .results import ModelResult, find_results, read_ground_truth, read_model_result
from .validation import (
    Traversal,
    active_channels,
    best_median_worst,
    cluster_agreement,
    error_per_index,
    ground_truth_r2,
    latent_traversal,
    spectrum_mse,
)

__all__ = [
    "ModelResult",
    "Traversal",
    "active_channels",
    "angle_difference",
    "best_median_worst",
    "cluster_agreement",
    "error_per_index",
    "find_results",
    "ground_truth_r2",
    "latent_traversal",
    "read_ground_truth",
    "read_model_result",
    "rowwise_correlation",
    "spectrum_mse",
]
