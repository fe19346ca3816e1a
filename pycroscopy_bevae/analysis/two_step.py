"""Two-step switching: does a loop switch through an intermediate state, and does a model
generate such loops?

The ferroelastic mechanism of the paper switches in two steps: along each branch of the
loop the piezoresponse jumps part of the way, stays on an intermediate plateau, then
jumps the rest of the way. :func:`switching_steps` counts the separated jumps of each
branch of a loop; a loop *shows the intermediate step* when both of its branches switch
in two or more jumps. :func:`two_step_channel` finds the embedding channel that best
separates known two-step positions, and :func:`two_step_summary` asks whether the loops
a model generates along that channel show the step (the same measure for the beta-VAE's
latent channels and dictionary learning's atoms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError
from ..params import Real, check
from ..preprocessing import unstack_features
from .results import ModelResult
from .validation import Traversal, latent_traversal

__all__ = ["TWO_STEP_MECHANISMS", "ChannelSeparation", "SwitchingSteps", "TwoStepSummary",
           "loop_branches", "switching_steps", "two_step_channel", "two_step_positions",
           "two_step_summary"]

#: Ground-truth mechanism names that switch in two steps (``/Ground_Truth/Mechanism``
#: labels of the synthetic maps: the ferroelastic bands of the default map, the
#: ``two_step`` positions of ``variant='factors'``).
TWO_STEP_MECHANISMS = ("ferroelastic", "two_step")


def loop_branches(voltage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rising and falling branch of one bias cycle, each ordered by voltage.

    A step belongs to the rising branch when the next step of the (periodic) cycle has a
    higher voltage, else to the falling branch.

    Parameters
    ----------
    voltage : numpy.ndarray
        (steps,) DC bias of one cycle, e.g. 0 -> +V -> -V -> 0.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Rising and falling step indices, each sorted by increasing voltage.

    Raises
    ------
    ParameterError
        ``voltage`` is not 1-D and finite, or a branch has fewer than 4 steps.

    Examples
    --------
    >>> up, down = loop_branches(np.array([0.0, 2.0, 4.0, 2.0, 0.0, -2.0, -4.0, -2.0]))
    >>> up.tolist(), down.tolist()
    ([6, 7, 0, 1], [5, 4, 3, 2])
    """
    v = np.asarray(voltage, dtype=float)
    if v.ndim != 1 or not np.all(np.isfinite(v)):
        raise ParameterError(f"voltage must be a finite 1-D array (the DC bias of one cycle), "
                             f"got shape {v.shape}")
    rising = np.roll(v, -1) > v
    out = []
    for mask in (rising, ~rising):
        idx = np.flatnonzero(mask)
        if idx.size < 4:
            raise ParameterError(f"voltage must sweep up and down with at least 4 steps each "
                                 f"way (one bias cycle), got {np.count_nonzero(rising)} rising "
                                 f"and {np.count_nonzero(~rising)} falling steps")
        out.append(idx[np.argsort(v[idx], kind="stable")])
    return out[0], out[1]


def _branch_jumps(y: np.ndarray, v: np.ndarray, min_fraction: float, level: float,
                  smooth: float) -> np.ndarray:
    """Voltages of the separated jumps of one branch (``y`` ordered by voltage ``v``)."""
    from scipy.ndimage import gaussian_filter1d

    ys = gaussian_filter1d(y, smooth, mode="nearest") if smooth > 0 else y
    height = ys.max() - ys.min()
    if not height > 0:
        return np.empty(0)
    direction = 1.0 if ys[-1] >= ys[0] else -1.0  # the way this branch switches
    slope = direction * np.gradient(ys, v)
    steep = slope > level * slope.max()
    edges = np.diff(np.concatenate([[0], steep.astype(np.int8), [0]]))
    jumps = []
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                           strict=True):
        rise = direction * (ys[min(stop, len(ys) - 1)] - ys[max(start - 1, 0)])
        if rise >= min_fraction * height:
            w = slope[start:stop]
            jumps.append(float(np.sum(v[start:stop] * w) / np.sum(w)))
    return np.asarray(jumps)


@dataclass
class SwitchingSteps:
    """The jumps of the rising and falling branch of each loop (:func:`switching_steps`).

    Attributes
    ----------
    rising, falling : list of numpy.ndarray
        Per loop, the voltages (slope-weighted centres) of the jumps of that branch.
    """

    rising: list
    falling: list

    @property
    def counts(self) -> np.ndarray:
        """(loops, 2) number of jumps of the rising and the falling branch."""
        return np.array([[len(a), len(b)] for a, b in zip(self.rising, self.falling,
                                                           strict=True)], dtype=int)

    @property
    def two_step(self) -> np.ndarray:
        """(loops,) bool: both branches switch in two or more separated jumps."""
        return (self.counts >= 2).all(axis=1) if self.rising else np.zeros(0, dtype=bool)


def switching_steps(loops: np.ndarray, voltage: np.ndarray, *, min_fraction: float = 0.2,
                    level: float = 0.25, smooth: float = 1.0) -> SwitchingSteps:
    """Count the separated jumps along each branch of piezoresponse loops.

    Each branch (:func:`loop_branches`) is ordered by voltage and smoothed with a
    Gaussian of ``smooth`` steps; its slope is taken in the direction the branch switches.
    A *jump* is a run of steps where the slope exceeds ``level`` times the branch's
    steepest slope and across which the loop changes by at least ``min_fraction`` of the
    branch's range. Two jumps are separate only when the slope between them falls below
    that level: a plateau. A one-step loop has one jump per branch, a two-step loop two.

    Parameters
    ----------
    loops : numpy.ndarray
        (loops, steps) or (steps,) piezoresponse of one bias cycle, any units (the measure
        is unchanged by an affine scaling of each loop).
    voltage : numpy.ndarray
        (steps,) DC bias of the cycle.
    min_fraction : float
        Smallest jump, as a fraction of the branch's range, in (0, 0.5].
    level : float
        Slope (fraction of the steepest) below which the loop is on a plateau, in (0, 1).
    smooth : float
        Standard deviation (steps) of the Gaussian smoothing; 0 for none.

    Returns
    -------
    SwitchingSteps

    Raises
    ------
    ParameterError
        Shapes that do not match, non-finite loops, or parameters out of range.

    Examples
    --------
    >>> v = 16 * np.r_[np.linspace(0, 1, 24, endpoint=False), np.linspace(1, -1, 48,
    ...                endpoint=False), np.linspace(-1, 0, 24, endpoint=False)]
    >>> up = np.gradient(np.r_[v[-1], v, v[0]])[1:-1] > 0
    >>> one = np.tanh((v - np.where(up, 4, -4)) / 0.8)
    >>> two = 0.5 * one + 0.5 * np.tanh((v - np.where(up, 11, -11)) / 0.8)
    >>> steps = switching_steps(np.stack([one, two]), v)
    >>> steps.counts.tolist(), steps.two_step.tolist()
    ([[1, 1], [2, 2]], [False, True])
    >>> np.round(steps.rising[1]).tolist()
    [4.0, 11.0]
    """
    min_fraction = check("min_fraction", min_fraction, Real(low=0, high=0.5, low_open=True))
    level = check("level", level, Real(low=0, high=1, low_open=True, high_open=True))
    smooth = check("smooth", smooth, Real(low=0))
    x = np.asarray(loops, dtype=float)
    x = x[None, :] if x.ndim == 1 else x
    v = np.asarray(voltage, dtype=float)
    if x.ndim != 2 or v.ndim != 1 or x.shape[1] != v.size:
        raise ParameterError(f"loops must be (loops, steps) with steps = len(voltage) "
                             f"({v.size}), got shape {np.shape(loops)}")
    if not np.all(np.isfinite(x)):
        raise ParameterError("loops must be finite (interpolate missing steps first)")
    up, down = loop_branches(v)
    rising = [_branch_jumps(row[up], v[up], min_fraction, level, smooth) for row in x]
    falling = [_branch_jumps(row[down], v[down], min_fraction, level, smooth) for row in x]
    return SwitchingSteps(rising, falling)


@dataclass
class ChannelSeparation:
    """Which channel best separates two classes of positions (:func:`two_step_channel`).

    Attributes
    ----------
    channel : int
        Column of the embedding with the largest separation.
    auc : float
        Its separation: ROC AUC of the channel as a score for the class, taken in the
        better direction (0.5 = chance, 1 = a threshold separates the classes exactly).
    aucs : numpy.ndarray
        (channels,) the same for every column.
    sign : int
        +1 when the class has the larger values of ``channel``, -1 when the smaller.
    """

    channel: int
    auc: float
    aucs: np.ndarray
    sign: int


def two_step_channel(embedding: np.ndarray, is_two_step: np.ndarray) -> ChannelSeparation:
    """The embedding channel that best separates two-step positions from the others.

    Parameters
    ----------
    embedding : numpy.ndarray
        (positions, channels), e.g. the active latent means or the dictionary
        coefficients.
    is_two_step : numpy.ndarray
        (positions,) bool, e.g. from :func:`two_step_positions`.

    Returns
    -------
    ChannelSeparation

    Raises
    ------
    ParameterError
        Mismatched shapes, no channel, or only one class of positions.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> two = rng.random(200) < 0.3
    >>> z = np.c_[rng.normal(size=200), -3.0 * two + rng.normal(size=200)]
    >>> sep = two_step_channel(z, two)
    >>> sep.channel, sep.sign, bool(sep.auc > 0.95), bool(abs(sep.aucs[0] - 0.5) < 0.1)
    (1, -1, True, True)
    """
    from sklearn.metrics import roc_auc_score

    z = np.asarray(embedding, dtype=float)
    labels = np.asarray(is_two_step).ravel()
    if z.ndim != 2 or z.shape[1] == 0 or len(z) != len(labels):
        raise ParameterError(f"embedding {z.shape} and is_two_step {labels.shape} must be "
                             "(positions, channels >= 1) and (positions,)")
    if labels.dtype != bool:
        raise ParameterError(f"is_two_step must be boolean, got dtype {labels.dtype}")
    if labels.all() or not labels.any():
        raise ParameterError("is_two_step must mark some positions, not all: the separation "
                             "needs both classes")
    raw = np.array([roc_auc_score(labels, z[:, c]) for c in range(z.shape[1])])
    aucs = np.maximum(raw, 1.0 - raw)
    best = int(np.argmax(aucs))
    return ChannelSeparation(best, float(aucs[best]), aucs, 1 if raw[best] >= 0.5 else -1)


def two_step_positions(truth: dict | None) -> np.ndarray | None:
    """(positions,) bool: positions whose true mechanism switches in two steps.

    ``truth`` is what :func:`~pycroscopy_bevae.analysis.read_ground_truth` returns; None
    when there is no ground truth, no mechanism map, or no two-step mechanism in it
    (:data:`TWO_STEP_MECHANISMS`) at any position.

    Examples
    --------
    >>> truth = {"mechanism": np.array([0, 2, 2, 1]),
    ...          "mechanism_names": ["c_domain", "a_domain", "ferroelastic", "imprint"]}
    >>> two_step_positions(truth).tolist()
    [False, True, True, False]
    >>> two_step_positions({"mechanism": np.zeros(3, int), "mechanism_names": ["c"]}) is None
    True
    """
    if not truth or "mechanism" not in truth:
        return None
    names = list(truth.get("mechanism_names") or [])
    labels = [i for i, n in enumerate(names) if n in TWO_STEP_MECHANISMS]
    two = np.isin(np.asarray(truth["mechanism"]).ravel(), labels)
    return two if two.any() else None


@dataclass
class TwoStepSummary:
    """The two-step measure of one model (:func:`two_step_summary`).

    Attributes
    ----------
    label : str
        The model's name.
    separation : ChannelSeparation
        The best-separating channel, its channel index in the model's embedding.
    traversal : Traversal
        Spectra generated along that channel (both modalities, scaled units).
    voltage : numpy.ndarray
        (steps,) DC bias of the loops.
    loops : numpy.ndarray
        (values, steps) generated piezoresponse along the traversal (physical units).
    steps : SwitchingSteps
        The jumps of each generated loop.
    expected : numpy.ndarray
        (values,) bool: most of the positions averaged for each traversal point switch in
        two steps, i.e. where the map says the generated loop should show the step.
    reconstructed : float
        Accuracy of the reconstructions against the truth: fraction of positions whose
        reconstructed loop shows the step exactly when the position switches in two steps.
    measured : float
        The same for the input loops (the reference: what the data shows).
    """

    label: str
    separation: ChannelSeparation
    traversal: Traversal
    voltage: np.ndarray
    loops: np.ndarray
    steps: SwitchingSteps
    expected: np.ndarray
    reconstructed: float
    measured: float

    @property
    def n_with_step(self) -> int:
        """Generated loops along the traversal that show the intermediate step."""
        return int(np.count_nonzero(self.steps.two_step))

    @property
    def n_agree(self) -> int:
        """Traversal points whose generated loop shows the step exactly where most of
        their nearest positions switch in two steps (and not elsewhere)."""
        return int(np.count_nonzero(self.steps.two_step == self.expected))


def two_step_summary(result: ModelResult, is_two_step: np.ndarray, n_values: int = 9,
                     k: int = 100) -> TwoStepSummary:
    """The two-step measure of a fitted model: its best channel and what it generates.

    Among the model's active channels (all channels when none is marked active), the one
    that best separates the two-step positions (:func:`two_step_channel`) is swept over its
    range with :func:`~pycroscopy_bevae.analysis.latent_traversal` (the mean of the ``k``
    nearest positions with the channel set, decoded), and the generated piezoresponse
    loops are tested for the intermediate step (:func:`switching_steps`) and compared with
    the mechanism of the positions each point was made from (``expected``: most of its
    ``k`` nearest positions switch in two steps). The procedure is
    the same for the beta-VAE (latent means, decoder) and dictionary learning
    (coefficients, atoms: an atom's traversal is the reconstruction of the code moved along
    that atom). Loops are judged in physical units (the stored scaler undone).

    Parameters
    ----------
    result : ModelResult
        A dictionary-learning or beta-VAE result with a ``Piezoresponse`` modality
        (else its first modality is used).
    is_two_step : numpy.ndarray
        (positions,) bool, the positions that switch in two steps.
    n_values, k : int
        Traversal points and nearest positions averaged per point.

    Returns
    -------
    TwoStepSummary

    Examples
    --------
    >>> import os, tempfile, h5py
    >>> from pycroscopy_bevae import (LoopProjector, DictionaryLearningProcess,
    ...                               write_synthetic_beps)
    >>> from pycroscopy_bevae.analysis import read_ground_truth, read_model_result
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(12, 12))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     res = read_model_result(DictionaryLearningProcess(proj, n_components=3,
    ...                                                      max_iter=40).compute())
    ...     two = two_step_positions(read_ground_truth(f))
    >>> s = two_step_summary(res, two, n_values=5, k=10)
    >>> s.loops.shape, bool(0.5 <= s.separation.auc <= 1.0), bool(s.measured > 0.95)
    ((5, 96), True, True)
    """
    two = np.asarray(is_two_step).ravel()
    if len(two) != len(result.errors):
        raise ParameterError(f"is_two_step has {len(two)} positions, the results of "
                             f"'{result.group}' {len(result.errors)}")
    channels = result.active if result.active.size else np.arange(result.embedding.shape[1])
    sep = two_step_channel(result.embedding[:, channels], two)
    sep = ChannelSeparation(int(channels[sep.channel]), sep.auc, sep.aucs, sep.sign)
    trav = latent_traversal(result.embedding, result.decode_flat, sep.channel,
                            n_values=n_values, k=k)
    which = result.names.index("Piezoresponse") if "Piezoresponse" in result.names else 0
    voltage = np.asarray(result.axis_values, dtype=float)

    def piezo(modalities: list) -> np.ndarray:
        if result.scaler is not None:
            modalities = result.scaler.inverse_transform(modalities)
        return np.asarray(modalities[which])

    loops = piezo(unstack_features(trav.spectra, result.steps))
    def accuracy(loops_: np.ndarray) -> float:
        ok = np.all(np.isfinite(loops_), axis=1)
        return float(np.mean(switching_steps(loops_[ok], voltage).two_step == two[ok]))

    return TwoStepSummary(
        label=result.label, separation=sep, traversal=trav, voltage=voltage, loops=loops,
        steps=switching_steps(loops, voltage), expected=two[trav.nearest].mean(axis=1) > 0.5,
        reconstructed=accuracy(piezo(result.reconstruction)), measured=accuracy(piezo(result.data)))
