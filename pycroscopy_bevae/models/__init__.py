"""Pure numerical code (numpy in, numpy out): loop projection, dictionary learning."""

from .projection import ProjectionResult, project_loops, rotation_angles

__all__ = ["ProjectionResult", "project_loops", "rotation_angles"]
from .dictionary import AlphaSearch, DictionaryLearner, alpha_grid_search  # noqa: E402

__all__ += ["AlphaSearch", "DictionaryLearner", "alpha_grid_search"]
