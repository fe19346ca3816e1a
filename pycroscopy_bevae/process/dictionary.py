"""``DictionaryLearningProcess``: the linear baseline, written into the HDF5 file."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..exceptions import ParameterError
from ..io.loop_sources import LoopSources
from ..io.usid import linked_ancillaries, make_dims, write_attrs, write_main
from ..models.dictionary import DictionaryLearner
from ..preprocessing import stack_features
from .base import GlobalFitProcess, accepts_sidpy

__all__ = ["DictionaryLearningProcess"]

logger = logging.getLogger(__name__)


class DictionaryLearningProcess(GlobalFitProcess):
    """Dictionary learning of (multi-modal) loops, as a ``pyUSID.processing.Process``.

    The selected loops of every modality are scaled, stacked along the feature axis
    ("dimensional stacking", as the paper does for piezoresponse + resonance) and
    decomposed as ``codes @ dictionary`` with :class:`~pycroscopy_bevae.models.DictionaryLearner`.

    Results go to ``<first source>-Dictionary_Learning_NNN`` next to the first source:

    ========================  =========================================  =================
    dataset                   shape                                      units
    ========================  =========================================  =================
    ``Coefficients``          positions x components                     a.u.
    ``Dictionary``            components x (modality, step)              scaled
    ``Reconstruction``        positions x (modality, step)               scaled
    ``Reconstruction_Error``  positions x 1 (mean squared error)         scaled^2
    ``Scaler_Mean/Std``       modality x step (to undo the scaling)      source units
    ========================  =========================================  =================

    Every parameter, the sources (paths and object references), package versions,
    the overall MSE and the MSE of each modality are attributes of the group.

    Parameters
    ----------
    h5_main : h5py.Dataset, sequence of h5py.Dataset, h5py.Group, or sidpy.Dataset(s)
        Loop dataset(s) of shape positions x steps (e.g. ``Piezoresponse`` and
        ``Resonance`` of a ``Fit-Loop_Projection_NNN`` group, which may be passed
        itself), all in one file open for writing. Or ``sidpy.Dataset`` loops (one per
        modality; SPATIAL dimensions and one SPECTRAL dimension in volts, whatever its
        name): they are written as USID into ``h5_target_group`` (required then) and
        the results go beside them.
    cycle : int, optional
        Cycle to use (0-based, negative from the end; default the last).
    field : {'off', 'on', 'both'}
        Field to use (default remanent, as the paper).
    scaling : {'global', 'step', 'balanced', 'none'}
        Scaling of each modality (default one global mean/std, as the reference code).
    n_components, alpha, transform_algorithm, fit_algorithm, method, batch_size, max_iter, \
tol, positive_code : see :class:`~pycroscopy_bevae.models.DictionaryLearner`
    random_state : int
        Seed of the fit.
    **kwargs
        ``pyUSID.processing.Process`` options (``h5_target_group``, ``verbose``).

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> from pycroscopy_bevae import LoopProjector
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(6, 6))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     grp = DictionaryLearningProcess(proj, n_components=3, max_iter=20).compute()
    ...     print(grp.name.rsplit("/", 1)[-1], grp["Dictionary"].shape)
    Piezoresponse-Dictionary_Learning_000 (3, 192)
    """

    result_names = ("Coefficients", "Dictionary", "Reconstruction", "Reconstruction_Error")
    _test_positions = 500

    @accepts_sidpy
    def __init__(
        self,
        h5_main,
        *,
        cycle: int | None = None,
        field: str = "off",
        scaling: str = "global",
        n_components: int = 5,
        alpha: float = 1.0,
        transform_algorithm: str = "omp",
        fit_algorithm: str = "lars",
        method: str = "batch",
        batch_size: int = 256,
        max_iter: int = 1000,
        tol: float = 1e-8,
        positive_code: bool = False,
        random_state: int = 0,
        **kwargs,
    ) -> None:
        self.sources = LoopSources.from_input(h5_main, cycle=cycle, field=field)
        self.learner = DictionaryLearner(
            n_components=n_components, alpha=alpha, transform_algorithm=transform_algorithm,
            fit_algorithm=fit_algorithm, method=method, batch_size=batch_size,
            max_iter=max_iter, tol=tol, positive_code=positive_code, scaling=scaling,
            segments=self.sources.steps, random_state=random_state)
        # every learner parameter is checked before anything is written
        p = self.learner.checked_params()
        main = self.sources.datasets[0]
        if p["n_components"] > main.shape[0]:
            raise ParameterError(
                f"n_components={n_components} exceeds the {main.shape[0]} position(s) of dataset "
                f"'{main.name}' in file '{main.file.filename}'; expected at most one atom per "
                "position")
        parms = self.sources.parms()
        parms.update({k: p[k] for k in ("scaling", "n_components", "transform_algorithm",
                                        "fit_algorithm", "method", "batch_size", "max_iter",
                                        "positive_code")})
        parms.update({"alpha": float(p["alpha"]), "tol": float(p["tol"]),
                      "random_state": "None" if p["random_state"] is None else p["random_state"],
                      "stacking": "dimensional"})
        self._init_process(self.sources.datasets[0], "Dictionary_Learning", parms, **kwargs)

    def _test(self, positions: np.ndarray) -> dict:
        """Fit on the given positions (default 500 drawn at random).

        Returns
        -------
        dict
            ``positions``, ``coefficients``, ``dictionary``, ``reconstruction`` (scaled),
            ``mse`` (per position) and ``learner`` (the fitted estimator).
        """
        X = stack_features(self.sources.read(positions))
        from sklearn.base import clone

        learner = clone(self.learner)
        codes = learner.fit_transform(X)
        recon = learner.inverse_transform(codes, scaled=True)
        mse = np.mean((recon - learner._scale(X)) ** 2, axis=1)
        return {"positions": positions, "coefficients": codes, "dictionary": learner.components_,
                "reconstruction": recon, "mse": mse, "learner": learner}

    def _result_bytes(self) -> int:
        n, k = self.h5_main.shape[0], int(self.parms_dict["n_components"])
        n_feat = sum(self.sources.steps)
        return (n * (k + n_feat + 1) + k * n_feat) * 8

    def _fit_and_write(self) -> None:
        src = self.sources
        X = stack_features(src.read())
        learner = self.learner
        t0 = time.perf_counter()
        codes = learner.fit_transform(X)
        recon = learner.inverse_transform(codes, scaled=True)
        t_infer = time.perf_counter() - t0 - learner.fit_time_
        Xs = learner._scale(X)
        sq = (recon - Xs) ** 2
        err = sq.mean(axis=1)
        bounds = np.cumsum([0, *src.steps])
        per_mod = {f"mse_{name}": float(sq[:, bounds[i]:bounds[i + 1]].mean())
                   for i, name in enumerate(src.names)}

        grp = self._open_results_group()
        main = src.datasets[0]
        pos, _ = linked_ancillaries(grp, main, spec=False)
        k = learner.components_.shape[0]
        comp_dim = make_dims([("Component", "", np.arange(k))])
        write_main(grp, codes, "Coefficients", "Coefficient", "a.u.", pos, comp_dim)
        dic = write_main(grp, learner.components_, "Dictionary", "Dictionary atom", "scaled",
                         comp_dim, src.feature_dims(), aux_spec_prefix="Feature_",
                         aux_pos_prefix="Component_")
        feat = {"inds": grp.file[dic.attrs["Spectroscopic_Indices"]],
                "vals": grp.file[dic.attrs["Spectroscopic_Values"]]}
        write_main(grp, recon, "Reconstruction", "Reconstruction", "scaled", pos, feat)
        self._write_shared_results(grp, pos, err, learner.scaler_.scalers_)
        write_attrs(grp, {
            "mse": float(err.mean()), **per_mod, "fit_time_s": float(learner.fit_time_),
            "inference_time_s": float(t_infer), "n_iter": int(learner.n_iter_),
            "modality_names": src.names,
            "codes_used": ("codes from the fit (scikit-learn fit_transform)"
                           if learner.transform_algorithm == "fit"
                           else f"scikit-learn transform with {learner.transform_algorithm}"),
            "reconstruction": "Coefficients @ Dictionary, in scaled units",
        })
        logger.info("dictionary learning: MSE %.4f (%s) in %.1f s", err.mean(),
                    ", ".join(f"{k[4:]} {v:.4f}" for k, v in per_mod.items()),
                    learner.fit_time_)
