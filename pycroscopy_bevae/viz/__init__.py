"""Matplotlib figures and animations; every plotting function returns ``(fig, axes)``."""

from .animation import (
    animate_snapshots,
    animate_traversal,
    jupyter_snapshots,
    jupyter_traversal,
)
from .loops import plot_atoms, plot_loops, plot_map, plot_maps, plot_projection_summary
from .two_step import plot_two_step
from .validation import (
    plot_embedding_maps,
    plot_error_maps,
    plot_error_violins,
    plot_reconstructions,
    plot_training_history,
    plot_traversal,
    plot_traversals,
)

__all__ = [
    "animate_snapshots",
    "animate_traversal",
    "jupyter_snapshots",
    "jupyter_traversal",
    "plot_atoms",
    "plot_embedding_maps",
    "plot_error_maps",
    "plot_error_violins",
    "plot_loops",
    "plot_map",
    "plot_maps",
    "plot_projection_summary",
    "plot_reconstructions",
    "plot_training_history",
    "plot_two_step",
    "plot_traversal",
    "plot_traversals",
]
