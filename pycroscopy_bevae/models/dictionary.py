"""Dictionary learning, the linear baseline of the paper (scikit-learn underneath)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .. import exceptions as _exceptions
from ..exceptions import ParameterError
from ..params import Choice, Either, Flag, Integer, Literal, Real, check_params
from ..preprocessing import LoopScaler, MultiScaler, stack_features, unstack_features

__all__ = ["DictionaryLearner", "AlphaSearch", "alpha_grid_search"]

logger = logging.getLogger(__name__)

_TRANSFORMS = ("omp", "lasso_lars", "lasso_cd", "lars", "threshold", "fit")
_METHODS = ("batch", "minibatch")
#: What each DictionaryLearner parameter accepts (``segments`` is checked against X).
CONSTRAINTS = {
    "n_components": Integer(low=1),
    "alpha": Real(low=0),
    "transform_algorithm": Choice(_TRANSFORMS),
    "transform_alpha": Either((Literal(None), Real(low=0, low_open=True))),
    "transform_n_nonzero_coefs": Either((Literal(None), Integer(low=1))),
    "positive_code": Flag(),
    "positive_dict": Flag(),
    "fit_algorithm": Choice(("lars", "cd")),
    "method": Choice(_METHODS),
    "batch_size": Integer(low=1),
    "max_iter": Integer(low=1),
    "tol": Real(low=0),
    "scaling": Choice(LoopScaler.MODES),
    "random_state": Either((Literal(None), Integer(low=0, high=2**32, high_open=True))),
}


class DictionaryLearner(TransformerMixin, BaseEstimator):
    """Sparse dictionary learning of spectra: ``X ~ codes @ dictionary``.

    A scikit-learn estimator wrapping :class:`sklearn.decomposition.DictionaryLearning`
    (or ``MiniBatchDictionaryLearning`` with ``method='minibatch'``), with optional
    scaling of the input so that reconstructions come back in physical units.

    Parameters
    ----------
    n_components : int
        Number of dictionary atoms (paper: 3 on the toy, 5 on BEPS).
    alpha : float
        Sparsity (lambda) of the fit (paper: 0.57 toy, 1 BEPS).
    transform_algorithm : {'omp', 'lasso_lars', 'lasso_cd', 'lars', 'threshold', 'fit'}
        Sparse coding used by :meth:`transform` (scikit-learn's ``transform``).
        ``'fit'`` returns, for the training data, the codes the fit itself produced
        (``fit_transform`` of scikit-learn: what the reference code reconstructs
        with) and codes new data with ``lasso_lars``.
    transform_alpha : float, optional
        Sparsity of the lasso/threshold transforms (default ``alpha``).
    transform_n_nonzero_coefs : int, optional
        Non-zero codes per spectrum for OMP/LARS; scikit-learn's default when None
        (note that scikit-learn uses ``transform_alpha``, default ``alpha``, as the
        OMP error tolerance, which then overrides this).
    positive_code, positive_dict : bool
        Constrain codes / atoms to be non-negative.
    fit_algorithm : {'lars', 'cd'}
        Sparse coding inside the fit.
    method : {'batch', 'minibatch'}
        Full-batch (reference) or the faster mini-batch algorithm.
    batch_size : int
        Mini-batch size (``method='minibatch'``).
    max_iter : int
        Iterations (batch) or epochs (mini-batch).
    tol : float
        Convergence tolerance.
    scaling : {'none', 'global', 'step', 'balanced'}
        Scaling of each modality before learning
        (see :class:`~pycroscopy_bevae.preprocessing.LoopScaler`).
    segments : sequence of int, optional
        Feature count of each stacked modality (for per-modality scaling); default one modality.
    random_state : int, optional
        Seed of every random step.

    Attributes
    ----------
    components_ : numpy.ndarray
        (n_components, n_features) dictionary, in scaled units.
    scaler_ : MultiScaler
        Fitted scaler.
    fit_codes_ : numpy.ndarray
        Codes produced by the fit for the training data.
    n_iter_ : int
        Iterations run.
    fit_time_ : float
        Seconds spent in the fit.

    Examples
    --------
    >>> from pycroscopy_bevae.datasets import toy_training_set
    >>> X = toy_training_set(300, seed=0).spectra
    >>> dl = DictionaryLearner(n_components=3, alpha=0.57, scaling="step", max_iter=20,
    ...                        random_state=0).fit(X)
    >>> dl.transform(X).shape, dl.inverse_transform(dl.transform(X)).shape
    ((300, 3), (300, 25))
    """

    def __init__(
        self,
        *,
        n_components: int = 5,
        alpha: float = 1.0,
        transform_algorithm: str = "omp",
        transform_alpha: float | None = None,
        transform_n_nonzero_coefs: int | None = None,
        positive_code: bool = False,
        positive_dict: bool = False,
        fit_algorithm: str = "lars",
        method: str = "batch",
        batch_size: int = 256,
        max_iter: int = 1000,
        tol: float = 1e-8,
        scaling: str = "none",
        segments: Sequence[int] | None = None,
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.transform_algorithm = transform_algorithm
        self.transform_alpha = transform_alpha
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.fit_algorithm = fit_algorithm
        self.method = method
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.scaling = scaling
        self.segments = segments
        self.random_state = random_state

    # ---- validation ---------------------------------------------------------------
    def checked_params(self) -> dict:
        """The parameters, checked against :data:`CONSTRAINTS`, as plain Python values.

        Raises
        ------
        ParameterError
            Naming the first parameter out of its range.

        Examples
        --------
        >>> DictionaryLearner(n_components=np.int64(4)).checked_params()["n_components"]
        4
        """
        return check_params({k: getattr(self, k) for k in CONSTRAINTS}, CONSTRAINTS)

    def _validate(self, X: np.ndarray) -> np.ndarray:
        self.checked_params()
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ParameterError(f"X must be a non-empty 2-D array (samples, features), got "
                                 f"shape {X.shape}")
        if not np.isfinite(X).all():
            raise ParameterError(f"X contains {int((~np.isfinite(X)).sum())} non-finite values; "
                                 "clean the loops first (preprocessing.clean_loops)")
        return X

    def _sizes(self, n_features: int) -> list[int]:
        sizes = list(self.segments) if self.segments is not None else [n_features]
        if sum(sizes) != n_features:
            raise ParameterError(f"segments {sizes} do not add up to {n_features} features")
        return sizes

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return stack_features(self.scaler_.transform(unstack_features(X, self._sizes_)))

    # ---- estimator API ------------------------------------------------------------
    def fit(self, X: np.ndarray, y=None) -> DictionaryLearner:
        """Learn the dictionary from (samples, features) spectra."""
        from sklearn.decomposition import DictionaryLearning, MiniBatchDictionaryLearning

        X = self._validate(X)
        self._sizes_ = self._sizes(X.shape[1])
        self.scaler_ = MultiScaler(self.scaling).fit(unstack_features(X, self._sizes_))
        Xs = self._scale(X)
        transform = "lasso_lars" if self.transform_algorithm == "fit" else \
            self.transform_algorithm
        common = dict(n_components=int(self.n_components), alpha=float(self.alpha),
                      fit_algorithm=self.fit_algorithm, positive_code=self.positive_code,
                      positive_dict=self.positive_dict, random_state=self.random_state,
                      transform_algorithm=transform, transform_alpha=self.transform_alpha,
                      transform_n_nonzero_coefs=self.transform_n_nonzero_coefs)
        t0 = time.perf_counter()
        if self.method == "batch":
            est = DictionaryLearning(max_iter=int(self.max_iter), tol=float(self.tol), **common)
            self.fit_codes_ = est.fit_transform(Xs)
            self._fit_codes_by = ("fit",)
        else:
            est = MiniBatchDictionaryLearning(max_iter=int(self.max_iter),
                                              batch_size=int(self.batch_size),
                                              tol=float(self.tol), **common)
            est.fit(Xs)
            self.fit_codes_ = None
        self.fit_time_ = time.perf_counter() - t0
        self.components_ = est.components_
        self.n_iter_ = int(getattr(est, "n_iter_", self.max_iter))
        self._est = est
        if self.fit_codes_ is None:
            self.fit_codes_ = est.transform(Xs)
            self._fit_codes_by = self._coding()
        logger.info("dictionary learning: %d atoms, alpha %g, %d iterations, %.1f s",
                    self.n_components, self.alpha, self.n_iter_, self.fit_time_)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Sparse codes (samples, n_components) with ``transform_algorithm``.

        A function of the fitted dictionary and ``X`` only (``'fit'`` codes new data with
        lasso_lars); the codes the fit itself found for its training data are
        :meth:`fit_transform`'s.
        """
        self._check_fitted()
        X = self._validate(X)
        if X.shape[1] != self.components_.shape[1]:
            raise ParameterError(
                f"X has {X.shape[1]} features (steps x modalities); the dictionary was fitted on "
                f"{self.components_.shape[1]} ({' + '.join(map(str, self._sizes_))})")
        transform, alpha, nnz = self._coding()
        # the coding may have been changed with set_params after the fit
        self._est.set_params(transform_algorithm=transform, transform_alpha=alpha,
                             transform_n_nonzero_coefs=nnz)
        return self._est.transform(self._scale(X))

    def _coding(self) -> tuple:
        """(algorithm, alpha, n_nonzero) of :meth:`transform` ('fit' codes new data with
        lasso_lars)."""
        transform = "lasso_lars" if self.transform_algorithm == "fit" else \
            self.transform_algorithm
        return (transform, self.transform_alpha, self.transform_n_nonzero_coefs)

    def fit_transform(self, X: np.ndarray, y=None, **fit_params) -> np.ndarray:
        """Fit, and return the training data's codes.

        With ``transform_algorithm='fit'`` (batch method) these are the fit's own lasso
        codes, as the reference code uses; with a mini-batch fit, the codes it computed
        once with the chosen coding. Otherwise :meth:`transform` of ``X``.
        """
        self.fit(X)
        if self._fit_codes_by == self._coding() or (
                self.transform_algorithm == "fit" and self._fit_codes_by == ("fit",)):
            return self.fit_codes_.copy()
        return self.transform(X)

    def inverse_transform(self, codes: np.ndarray, scaled: bool = False) -> np.ndarray:
        """Reconstruction ``codes @ components_``, un-scaled unless ``scaled=True``."""
        self._check_fitted()
        codes = np.asarray(codes, dtype=float)
        if codes.ndim != 2 or codes.shape[1] != self.components_.shape[0]:
            raise ParameterError(f"codes must be (samples, {self.components_.shape[0]}), got "
                                 f"{codes.shape}")
        Xs = codes @ self.components_
        if scaled:
            return Xs
        return stack_features(self.scaler_.inverse_transform(unstack_features(Xs,
                                                                                self._sizes_)))

    def reconstruct(self, X: np.ndarray, scaled: bool = False) -> np.ndarray:
        """``inverse_transform(transform(X))``."""
        return self.inverse_transform(self.transform(X), scaled=scaled)

    def score_mse(self, X: np.ndarray) -> float:
        """Mean squared reconstruction error of ``X`` in scaled units."""
        X = self._validate(X)
        return float(np.mean((self.reconstruct(X, scaled=True) - self._scale(X)) ** 2))

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise _exceptions.NotFittedError(
                "this DictionaryLearner is not fitted yet: call fit() first")



@dataclass
class AlphaSearch:
    """Result of :func:`alpha_grid_search`.

    Attributes
    ----------
    alphas : numpy.ndarray
        Values tried.
    losses : numpy.ndarray
        Validation (or training) MSE in scaled units for each alpha.
    objectives : numpy.ndarray
        Dictionary-learning objective ``0.5 * ||X - UV||^2 / n + alpha * |U|_1 / n`` on the
        training data (what the fit minimises).
    best_alpha : float
        Alpha with the lowest loss.
    fit_times : numpy.ndarray
        Seconds per fit.
    """

    alphas: np.ndarray
    losses: np.ndarray
    objectives: np.ndarray
    best_alpha: float
    fit_times: np.ndarray


def alpha_grid_search(
    X: np.ndarray,
    alphas: Sequence[float],
    X_val: np.ndarray | None = None,
    progress: bool = True,
    **params,
) -> AlphaSearch:
    """Fit one :class:`DictionaryLearner` per alpha and return the loss of each.

    Parameters
    ----------
    X : numpy.ndarray
        Training spectra.
    alphas : sequence of float
        Sparsity values to try.
    X_val : numpy.ndarray, optional
        Validation spectra for the loss (default: the training data).
    progress : bool
        Show a tqdm bar.
    **params
        Other :class:`DictionaryLearner` parameters (``n_components``, ``scaling``...).

    Returns
    -------
    AlphaSearch

    Examples
    --------
    >>> from pycroscopy_bevae.datasets import toy_training_set
    >>> X = toy_training_set(200, seed=0).spectra
    >>> res = alpha_grid_search(X, [0.1, 1.0], n_components=3, scaling="step", max_iter=10,
    ...                         random_state=0, progress=False)
    >>> res.losses.shape
    (2,)
    """
    from tqdm.auto import tqdm

    if len(alphas) == 0:
        raise ParameterError("alphas must contain at least one value")
    losses, objectives, times = [], [], []
    for a in tqdm(list(alphas), desc="alpha grid", disable=not progress, leave=False):
        dl = DictionaryLearner(alpha=float(a), **params).fit(X)
        Xs = dl._scale(np.asarray(X, float))
        U = dl.fit_codes_
        n = Xs.shape[0]
        objectives.append(float(0.5 * np.sum((Xs - U @ dl.components_) ** 2) / n
                                + a * np.abs(U).sum() / n))
        losses.append(dl.score_mse(X if X_val is None else X_val))
        times.append(dl.fit_time_)
    losses_arr = np.asarray(losses)
    return AlphaSearch(np.asarray(alphas, float), losses_arr, np.asarray(objectives),
                       float(np.asarray(alphas)[int(np.argmin(losses_arr))]), np.asarray(times))
