"""Pure numerical code (numpy in, numpy out): loop projection."""

from .projection import ProjectionResult, project_loops, rotation_angles

__all__ = ["ProjectionResult", "project_loops", "rotation_angles"]
