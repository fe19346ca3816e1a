"""Pure numerical code (numpy in, numpy out): loop projection, dictionary learning, and the
beta-VAE (TensorFlow is imported only when a network is built)."""

from .projection import ProjectionResult, project_loops, rotation_angles

__all__ = ["ProjectionResult", "project_loops", "rotation_angles"]
from .loop_fit import LOOP_PARAMETERS, LoopFitResult, fit_loops, loop_model  # noqa: E402

__all__ += ["LOOP_PARAMETERS", "LoopFitResult", "fit_loops", "loop_model"]
from .sho_fit import SHO_PARAMETERS, SHOFitResult, fit_sho, sho_model  # noqa: E402

__all__ += ["SHO_PARAMETERS", "SHOFitResult", "fit_sho", "sho_model"]
from .dictionary import AlphaSearch, DictionaryLearner, alpha_grid_search  # noqa: E402

__all__ += ["AlphaSearch", "DictionaryLearner", "alpha_grid_search"]
from .vae import (  # noqa: E402
    PRECISIONS,
    PRESETS,
    STRATEGIES,
    BetaVAE,
    Snapshot,
    channel_kl,
    resolve_strategy,
    schedule_values,
)

__all__ += ["PRECISIONS", "PRESETS", "STRATEGIES", "BetaVAE", "Snapshot", "channel_kl",
            "resolve_strategy", "schedule_values"]
from .runtime import configure_tensorflow, runtime_info  # noqa: E402
from .schedule import (  # noqa: E402
    CapacitySchedule,
    RelaxSchedule,
    Schedule,
    ScheduleValues,
    StepSchedule,
    active_channels,
)

__all__ += ["CapacitySchedule", "RelaxSchedule", "Schedule", "ScheduleValues", "StepSchedule",
            "active_channels"]

__all__ += ["configure_tensorflow", "runtime_info"]
