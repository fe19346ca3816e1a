"""Matplotlib figures; every function returns ``(fig, axes)``."""

from .loops import plot_atoms, plot_loops, plot_map, plot_maps, plot_projection_summary

__all__ = ["plot_atoms", "plot_loops", "plot_map", "plot_maps", "plot_projection_summary"]
