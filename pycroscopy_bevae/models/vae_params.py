"""The parameters of :class:`~pycroscopy_bevae.models.BetaVAE`: one table, its presets and
defaults, and the frozen settings object the trainer reads.

:data:`PARAMETER_CONSTRAINTS` is the one source of the parameter names (in the order
they are stored with a model) and of what each accepts; the estimator, the process, the
command line and the model store ask it through
:meth:`~pycroscopy_bevae.models.BetaVAE.parameter_names`.
"""

from __future__ import annotations

from dataclasses import asdict, make_dataclass

from ..exceptions import ParameterError
from ..params import Choice, Either, Flag, Integer, Literal, Real, check_params
from .rotation import ROTATIONS

__all__ = ["PARAMETER_CONSTRAINTS", "PRESETS", "DEFAULTS", "PRECISIONS", "SCHEDULES",
           "Settings", "settings_from"]

#: Preset parameter sets. ``paper``: exact sizes, optimiser and BEPS schedule of the paper
#: (meant for a GPU). ``fast``: a compact model of the same family for a 2-core CPU,
#: redesigned from measurements (docs/method.rst): one BiLSTM per side beside a linear
#: path, a schedule counted in rounds of 100 updates with geometric beta stairs from the
#: ``auto`` start, and prune-then-relax (20 rounds) at ``target_active`` channels or,
#: without a target, at 2 % of the data variance from the primed reconstruction.
PRESETS: dict[str, dict] = {
    "paper": dict(units=128, n_blocks=3, layers_per_block=2, embedding_dim=16, latent_dim=16,
                  learning_rate=3e-5, batch_size=300, epochs=20_000, prime_epochs=6000,
                  beta_start=0.0025, beta_step=0.0025, step_epochs=1000, lambda0=1e-5,
                  lambda_mode="follow", kl_reduction="mean", layer_norm_axis="time"),
    "fast": dict(units=32, n_blocks=0, layers_per_block=2, embedding_dim=16, latent_dim=16,
                 learning_rate=1e-3, batch_size=64, round_updates=100, epochs=110,
                 prime_epochs=30, beta_start="auto", beta_step=0.0, beta_growth=1.3,
                 step_epochs=3, lambda0=1e-5, lambda_mode="follow", kl_reduction="sum",
                 layer_norm_axis="time", linear_path=True, relax_epochs=20, relax_beta=0.01,
                 relax_lr=0.1, r2_tolerance=0.02, count_tolerance=0.01),
}

#: Values of the parameters that every preset may leave unset.
DEFAULTS = dict(kl_fraction=0.6, lambda_step=0.0, snapshot_every=0, kl_threshold=0.1,
                mse_tolerance=2.0, precision="float32", random_state=0, round_updates=0,
                schedule="steps", capacity_start=0.0, capacity_step=0.0, target_active=0,
                relax_epochs=0, relax_beta=0.1, relax_lr=0.1, linear_path=False,
                beta_growth=1.0, r2_tolerance=0.0, validation_fraction=0.1,
                count_tolerance=0.0, rotation="ica")

#: Regularisation schedules (``schedule`` parameter).
SCHEDULES = ("steps", "capacity")
#: Accepted ``precision`` values: float32, or Keras mixed precision (float16 compute with
#: loss scaling for GPUs; bfloat16 compute for CPUs/TPUs with native bfloat16).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

_SIZE, _COUNT = Integer(low=1), Integer(low=0)
_POSITIVE, _NON_NEGATIVE, _FRACTION = Real(low=0, low_open=True), Real(low=0), Real(low=0, high=1)

#: Every BetaVAE parameter (besides ``preset`` and ``strategy``) and what it accepts, in
#: the order they are stored with a trained model.
PARAMETER_CONSTRAINTS = {
    "units": _SIZE, "n_blocks": _COUNT, "layers_per_block": _SIZE, "embedding_dim": _SIZE,
    "latent_dim": _SIZE, "learning_rate": _POSITIVE, "batch_size": _SIZE, "epochs": _COUNT,
    "prime_epochs": _COUNT, "beta_start": Either((Literal("auto"), Real(low=0))),
    "beta_step": _NON_NEGATIVE, "step_epochs": _SIZE,
    "kl_fraction": Real(low=0, high=1, low_open=True, high_open=True),
    "lambda0": _NON_NEGATIVE, "lambda_mode": Choice(("follow", "step")),
    "lambda_step": _NON_NEGATIVE, "kl_reduction": Choice(("mean", "sum")),
    "layer_norm_axis": Choice(("time", "features")), "snapshot_every": _COUNT,
    "kl_threshold": _NON_NEGATIVE, "mse_tolerance": _POSITIVE,
    "precision": Choice(PRECISIONS), "random_state": Integer(low=0, high=2**32, high_open=True),
    "round_updates": _COUNT, "schedule": Choice(SCHEDULES), "capacity_start": _NON_NEGATIVE,
    "capacity_step": _NON_NEGATIVE, "target_active": _COUNT, "relax_epochs": _COUNT,
    "relax_beta": _FRACTION, "relax_lr": _FRACTION, "linear_path": Flag(),
    "beta_growth": Real(low=1, high=100), "r2_tolerance": Real(low=0, high=1, high_open=True),
    "validation_fraction": Real(low=0, high=0.5, high_open=True),
    "count_tolerance": Real(low=0, high=1, high_open=True),
    "rotation": Choice(ROTATIONS),
}


def _to_dict(self) -> dict:
    """The settings as a plain dict (JSON-serialisable, in the stored order)."""
    return asdict(self)


#: The resolved, checked parameters of one training (frozen; attributes by name).
Settings = make_dataclass("Settings", [(name, object) for name in PARAMETER_CONSTRAINTS],
                          frozen=True, namespace={"to_dict": _to_dict})
Settings.__module__ = __name__
Settings.__doc__ = ("The resolved and checked BetaVAE parameters of one training (frozen): "
                    "one attribute per entry of PARAMETER_CONSTRAINTS.")


def settings_from(values: dict, preset: str | None) -> Settings:
    """The parameters ``values`` (None: unset) completed from ``preset`` and
    :data:`DEFAULTS`, checked against :data:`PARAMETER_CONSTRAINTS` and the rules between
    parameters.

    Examples
    --------
    >>> settings_from({"epochs": 3}, "fast").epochs
    3
    """
    if preset is not None and preset not in PRESETS:
        raise ParameterError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or "
                             "None")
    base = {**DEFAULTS, **(PRESETS[preset] if preset else {})}
    out = {name: base.get(name) if values.get(name) is None else values[name]
           for name in PARAMETER_CONSTRAINTS}
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise ParameterError(f"parameters {missing} have no value: set them or use a preset")
    p = check_params(out, PARAMETER_CONSTRAINTS)
    if p["epochs"] < 1:
        raise ParameterError(f"epochs must be >= 1, got {p['epochs']!r}")
    if p["target_active"] > p["latent_dim"]:
        raise ParameterError(f"target_active={p['target_active']} exceeds latent_dim="
                             f"{p['latent_dim']}")
    counting = p["relax_epochs"] > 0 and p["validation_fraction"] > 0
    if values.get("count_tolerance") is None and (p["target_active"] or not counting):
        # the preset's automatic count applies where it can run and no count is asked for
        p["count_tolerance"] = 0.0
    if p["count_tolerance"] > 0 and not counting:
        raise ParameterError(
            f"count_tolerance={p['count_tolerance']} needs a relax phase and held-out positions; "
            f"expected relax_epochs > 0 and validation_fraction > 0, got {p['relax_epochs']} "
            f"and {p['validation_fraction']}")
    return Settings(**p)
