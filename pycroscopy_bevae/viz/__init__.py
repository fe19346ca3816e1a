"""Matplotlib figures; every function returns ``(fig, axes)``."""

from .loops import plot_loops, plot_map, plot_projection_summary

__all__ = ["plot_loops", "plot_map", "plot_projection_summary"]
