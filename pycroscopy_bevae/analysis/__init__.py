"""Metrics and validation: numbers, no plotting."""

from .agreement import PairMatch, SeedAgreement, match_channels, seed_agreement
from .compare import factor_scores, linear_baselines, mechanism_accuracy, modality_mse
from .metrics import angle_difference, rowwise_correlation
from .results import (
    ModelResult,
    find_results,
    read_ground_truth,
    read_loop_fit,
    read_model_result,
)
from .two_step import (
    TWO_STEP_MECHANISMS,
    ChannelSeparation,
    SwitchingSteps,
    TwoStepSummary,
    loop_branches,
    switching_steps,
    two_step_channel,
    two_step_positions,
    two_step_summary,
)
from .validation import (
    Traversal,
    active_channels,
    active_components,
    best_median_worst,
    cluster_agreement,
    error_per_index,
    ground_truth_r2,
    latent_traversal,
    spectrum_mse,
)

__all__ = [
    "TWO_STEP_MECHANISMS",
    "ChannelSeparation",
    "ModelResult",
    "PairMatch",
    "SeedAgreement",
    "SwitchingSteps",
    "Traversal",
    "TwoStepSummary",
    "active_channels",
    "active_components",
    "angle_difference",
    "best_median_worst",
    "cluster_agreement",
    "error_per_index",
    "factor_scores",
    "find_results",
    "ground_truth_r2",
    "latent_traversal",
    "linear_baselines",
    "loop_branches",
    "match_channels",
    "mechanism_accuracy",
    "modality_mse",
    "read_ground_truth",
    "read_loop_fit",
    "read_model_result",
    "rowwise_correlation",
    "seed_agreement",
    "spectrum_mse",
    "switching_steps",
    "two_step_channel",
    "two_step_positions",
    "two_step_summary",
]
