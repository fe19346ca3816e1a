"""A synthetic BEPS measurement with known ground truth, written as a USID file.

The map mimics the PbZr0.2Ti0.8O3 film of Agar et al. (2018, 2019): a
c-domain matrix, a region of a1/a2 ferroelastic bands where some bands switch
as reduced, tilted a-domain loops and others by a two-step, three-state
ferroelastic path (an intermediate plateau in the piezoresponse and resonance
hardening while the intermediate state lasts), and an imprinted (voltage
shifted) region around a defect.  Loop parameters vary smoothly inside each
region; each position has its own instrument phase so loop projection is
needed; the SHO fits carry noise and a small fraction of failed fits.

``variant='factors'`` writes a map that linear models cannot summarise: every loop is
a non-linear function of six continuous factors (:data:`FACTORS`), each varying over
the map in small patches independently of the others, and a position switches in one
step or, inside ferroelastic domains, in two (``/Ground_Truth/Mechanism``:
:data:`FACTOR_MECHANISMS`). The factors are stored in ``/Ground_Truth/Loop_Parameters``.

Layout (as BGlib's translator and SHO fitter write it)::

    /Measurement_000                       instrument-like attributes
      /Channel_000
        Raw_Data                           complex BE response (optional, small grids)
        Raw_Data-SHO_Fit_000/Fit           compound SHO fit, positions x (Cycle, DC_Offset, Field)
    /Ground_Truth                          mechanism map, clean loops, angles, loop parameters
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import h5py
import numpy as np

from .._version import __version__
from ..exceptions import ParameterError
from ..io.names import SHO_FIELDS
from ..io.usid import check_new_file, make_dims, new_h5_file, write_attrs, write_main
from ..params import Either, Integer, Literal, Real, check

__all__ = ["MECHANISMS", "FACTORS", "FACTOR_MECHANISMS", "VARIANTS", "SyntheticBEPS",
           "make_synthetic_beps", "write_synthetic_beps", "triangle_waveform"]

#: Mechanism label -> name, as stored in ``/Ground_Truth/Mechanism`` attributes.
MECHANISMS = ("c_domain", "a_domain", "ferroelastic", "imprint")
#: Map variants: four mechanisms with smoothly varying parameters (default), or loops
#: driven by six independent continuous factors.
VARIANTS = ("mechanisms", "factors")
#: Factors of ``variant='factors'`` (stored under ``/Ground_Truth/Loop_Parameters``) and
#: their ranges: coercive voltage (V), switching width (V, the inverse sharpness), voltage
#: of the second switching step (V; NaN where a position switches in one step), fraction
#: of the loop switched at that second step, imprint (V), resonance softening depth (Hz).
FACTORS = {"coercive_voltage": (3.0, 9.0), "switching_width": (0.4, 2.0),
           "step_voltage": (11.0, 13.5), "step_height": (0.3, 0.65),
           "imprint": (-2.5, 2.5), "softening": (2e3, 1e4)}
#: Mechanism labels of ``variant='factors'``.
FACTOR_MECHANISMS = ("one_step", "two_step")

_RAW_BINS = 16
#: Seed-sequence tag of the raw-response noise (its own streams: the other values of a map
#: do not depend on whether raw data is written).
_RAW_NOISE_TAG = 24


def triangle_waveform(n_steps: int = 96, v_max: float = 16.0) -> np.ndarray:
    """DC bias of one cycle: 0 -> +v_max -> -v_max -> 0 (the last step just before 0).

    Examples
    --------
    >>> v = triangle_waveform(8, 4.0)
    >>> v.tolist()
    [0.0, 2.0, 4.0, 2.0, 0.0, -2.0, -4.0, -2.0]
    """
    t = np.arange(n_steps) / n_steps
    tri = np.where(t < 0.25, 4 * t, np.where(t < 0.75, 2 - 4 * t, 4 * t - 4))
    return v_max * tri


@dataclass
class SyntheticBEPS:
    """Arrays of a synthetic BEPS map (see :func:`make_synthetic_beps`).

    Spectroscopic axis order everywhere: (cycle, step, field) flattened with
    field fastest (in-field step first, then the out-of-field step), as an
    instrument acquires them.
    """

    shape: tuple[int, int]
    dc: np.ndarray  # (n_steps,) one cycle
    field_values: np.ndarray  # (2,) [1, 0]: in-field first
    n_cycles: int
    mechanism: np.ndarray  # (rows, cols) int
    amplitude: np.ndarray  # (positions, cycles, steps, fields)
    phase: np.ndarray
    frequency: np.ndarray
    quality: np.ndarray
    r2: np.ndarray
    true_piezoresponse: np.ndarray  # same shape, volts (same scale as amplitude)
    true_resonance: np.ndarray  # Hz
    true_rotation: np.ndarray  # (positions,) rad: A cos(phi + theta) recovers the truth
    parameters: dict  # name -> (positions,) loop parameters
    failed: np.ndarray  # (positions, cycles, steps, fields) bool


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std random field smooth over ``scale`` (fraction of the map)."""
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal(shape)
    sigma = max(scale * max(shape), 0.5)
    f = gaussian_filter(noise, sigma=sigma, mode="wrap")
    std = f.std()
    return (f - f.mean()) / (std if std > 0 else 1.0)


def _mechanism_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    rows, cols = shape
    y, x = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols,
                       indexing="ij")
    wobble = 0.06 * _smooth_field(rng, shape, 0.15)
    band_region = x < 0.55 + 0.08 * np.sin(2 * np.pi * 1.5 * y) + wobble
    u = (x + y) / np.sqrt(2)
    stripe = np.mod(u / 0.22 + 0.3 * wobble, 1.0)
    labels = np.zeros(shape, dtype=np.int8)
    labels[band_region & (stripe < 0.4)] = 1
    labels[band_region & (stripe >= 0.4)] = 2
    blob = (x - 0.78) ** 2 + (y - 0.32) ** 2 < (0.15 + 0.03 * wobble) ** 2
    labels[blob & ~band_region] = 3
    return labels


def _branch_sigmoid(v: np.ndarray, rising: np.ndarray, c_up: np.ndarray, c_down: np.ndarray,
                    width: np.ndarray) -> np.ndarray:
    """Switching state in [-1, 1]: tanh around the coercive voltage of the current branch."""
    c = np.where(rising, c_up, c_down)
    return np.tanh((v - c) / width)


def make_synthetic_beps(
    shape: tuple[int, int] = (60, 60),
    seed: int = 0,
    n_steps: int = 96,
    n_cycles: int = 2,
    v_max: float = 16.0,
    noise: float = 0.04,
    failed_fraction: float = 0.003,
    variant: str = "mechanisms",
) -> SyntheticBEPS:
    """Generate the arrays of a synthetic BEPS map with ground truth.

    Everything is held in memory (about 1.5 kB per position and spectroscopic
    step); for large maps write the file directly with :func:`write_synthetic_beps`,
    which generates the same values a block of positions at a time.

    Parameters
    ----------
    shape : (rows, cols)
        Grid size.
    seed : int
        Seed of every random step; equal seeds give identical data.
    n_steps : int
        DC steps per cycle (multiple of 4).
    n_cycles : int
        Number of bias cycles; the first shows a little wake-up (larger coercive voltages).
    v_max : float
        DC amplitude in volts.
    noise : float
        Standard deviation of the complex noise relative to the saturated loop amplitude.
    failed_fraction : float
        Fraction of SHO fits that failed (half NaN, half garbage with low R2).
    variant : {'mechanisms', 'factors'}
        ``'mechanisms'``: four switching mechanisms in regions (default; unchanged
        values for a seed). ``'factors'``: loops driven non-linearly by the six
        continuous factors of :data:`FACTORS` (a benchmark that linear models cannot
        solve at as many components as factors).

    Returns
    -------
    SyntheticBEPS

    Examples
    --------
    >>> s = make_synthetic_beps(shape=(6, 7), seed=1)
    >>> s.amplitude.shape, s.mechanism.shape
    ((42, 2, 96, 2), (6, 7))
    """
    plan = _Plan.create(shape, seed, n_steps, n_cycles, v_max, noise, failed_fraction, variant)
    c = plan.block(0, plan.n_pos, _sequential_draws(plan.rng))
    return SyntheticBEPS(
        shape=plan.shape,
        dc=plan.dc,
        field_values=plan.field_values,
        n_cycles=plan.n_cycles,
        mechanism=plan.labels,
        amplitude=c["amplitude"],
        phase=c["phase"],
        frequency=c["frequency"],
        quality=c["quality"],
        r2=c["r2"],
        true_piezoresponse=c["true_piezoresponse"],
        true_resonance=c["true_resonance"],
        true_rotation=plan.true_rotation,
        parameters=plan.parameters(),
        failed=c["failed"],
    )


#: Position-by-step random draws, in the order the generator makes them: (method, args).
#: Each is one stream over all (position, cycle, step, field) values in C order, so a
#: block of positions is a contiguous piece of every stream.
_DRAWS = (
    ("standard_normal", ()),  # noise, real part
    ("standard_normal", ()),  # noise, imaginary part
    ("standard_normal", ()),  # frequency noise
    ("standard_normal", ()),  # quality-factor noise
    ("standard_normal", ()),  # R2 noise
    ("random", ()),  # failed fit
    ("random", ()),  # failed fit is NaN (else garbage)
    ("uniform", (0.0, 3.0)),  # garbage amplitude
    ("uniform", (-np.pi, np.pi)),  # garbage phase
    ("uniform", (1.2e6, 1.45e6)),  # garbage frequency
    ("uniform", (0.0, 0.3)),  # garbage R2
)

#: Default block of a chunked write: about this many (position, step) values at a time
#: (some 30 float64 temporaries each, i.e. ~130 MB of working memory).
_CHUNK_VALUES = 1 << 19


def _sequential_draws(rng: np.random.Generator):
    """Draws for a single block covering every position: straight from ``rng``."""
    def draw(k: int, size: tuple) -> np.ndarray:
        name, args = _DRAWS[k]
        return getattr(rng, name)(*args, size=size)
    return draw


def _stream_draws(rng: np.random.Generator, n_values: int, chunk_values: int):
    """Draws for consecutive blocks of positions, equal to the all-at-once draws.

    One generator per entry of :data:`_DRAWS`, each started at the state ``rng`` has
    when the all-at-once code would make that draw (found by drawing each stream once
    in pieces and discarding it: a draw of n values in pieces consumes the bit
    stream exactly as one draw of n values). Blocks must be requested in order.
    """
    states = []
    for name, args in _DRAWS:
        states.append(rng.bit_generator.state)
        left = n_values
        while left > 0:
            m = min(left, chunk_values)
            getattr(rng, name)(*args, size=m)
            left -= m
    gens = []
    for state in states:
        bg = type(rng.bit_generator)()
        bg.state = state
        gens.append(np.random.Generator(bg))

    def draw(k: int, size: tuple) -> np.ndarray:
        name, args = _DRAWS[k]
        return getattr(gens[k], name)(*args, size=size)
    return draw


@dataclass
class _Plan:
    """Map-level part of the generator: the mechanism map, per-position loop parameters,
    the waveform, and the random generator positioned for the per-value draws."""

    shape: tuple[int, int]
    n_pos: int
    dc: np.ndarray
    rising: np.ndarray
    field_values: np.ndarray
    n_cycles: int
    labels: np.ndarray
    mech: np.ndarray
    loop_params: dict  # name -> (positions,)
    phi0: np.ndarray
    perp: np.ndarray
    q0: np.ndarray
    noise: float
    failed_fraction: float
    rng: np.random.Generator
    variant: str = "mechanisms"

    scale = 1e-4  # volts: the amplitude scale of real BE responses

    @classmethod
    def create(cls, shape, seed, n_steps, n_cycles, v_max, noise, failed_fraction,
               variant="mechanisms") -> _Plan:
        shape = _check_shape(shape)
        if n_steps < 8 or n_steps % 4:
            raise ParameterError(f"n_steps must be a multiple of 4 and >= 8, got {n_steps}")
        if n_cycles < 1:
            raise ParameterError(f"n_cycles must be >= 1, got {n_cycles}")
        if not 0 <= failed_fraction < 0.5:
            raise ParameterError(f"failed_fraction must be in [0, 0.5), got {failed_fraction}")
        if noise < 0:
            raise ParameterError(f"noise must be >= 0, got {noise}")
        if variant not in VARIANTS:
            raise ParameterError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "factors" and v_max < 16.0:
            raise ParameterError(f"variant='factors' needs v_max >= 16 V (its second switching "
                                 f"step reaches 16 V), got {v_max}")
        rng = np.random.default_rng(seed)
        if variant == "factors":
            return cls._create_factors(shape, rng, n_steps, n_cycles, v_max, noise,
                                       failed_fraction)
        n_pos = shape[0] * shape[1]
        labels = _mechanism_map(shape, rng)
        mech = labels.ravel()

        def smooth(scale: float = 0.12) -> np.ndarray:
            return _smooth_field(rng, shape, scale).ravel()

        # --- loop parameters per position ----------------------------------------------
        amp = np.choose(mech, [1.0, 0.38, 0.85, 0.9]) * (1 + 0.08 * smooth())
        width = np.choose(mech, [0.9, 3.2, 0.8, 1.0]) * (1 + 0.1 * smooth())
        vc = np.choose(mech, [5.0, 6.5, 3.0, 5.0]) * (1 + 0.08 * smooth())
        imprint = np.choose(mech, [0.0, 0.0, 0.0, 4.5]) + 0.3 * smooth()
        slope = np.choose(mech, [0.004, 0.015, 0.006, 0.004]) * (1 + 0.2 * smooth())
        offset = 0.05 * smooth(0.3)
        vc2 = np.where(mech == 2, 10.5 * (1 + 0.05 * smooth()), np.nan)  # second step
        f0 = 1.325e6 + np.choose(mech, [0.0, 6e3, 3e3, -2e3]) + 3e3 * smooth(0.25)
        soften = np.choose(mech, [6e3, 2.5e3, 4e3, 6e3]) * (1 + 0.1 * smooth())
        harden = np.where(mech == 2, 9e3 * (1 + 0.1 * smooth()), 0.0)
        phi0 = np.angle(np.exp(1j * (1.0 + 1.6 * smooth(0.35)
                                     + 0.05 * rng.standard_normal(n_pos))))
        perp = 0.06 * smooth(0.3)  # small response perpendicular to the switching axis
        q0 = 180 + 25 * smooth(0.2)

        # --- waveform --------------------------------------------------------------------
        dc = triangle_waveform(n_steps, v_max)
        rising = np.gradient(np.concatenate([dc[-1:], dc, dc[:1]]))[1:-1] > 0
        field_values = np.array([1, 0])  # in-field first, as BGlib's translator writes
        return cls(shape=shape, n_pos=n_pos, dc=dc, rising=rising, field_values=field_values,
                   n_cycles=int(n_cycles), labels=labels, mech=mech,
                   loop_params=dict(amp=amp, width=width, vc=vc, imprint=imprint, slope=slope,
                                    offset=offset, vc2=vc2, f0=f0, soften=soften,
                                    harden=harden),
                   phi0=phi0, perp=perp, q0=q0, noise=noise,
                   failed_fraction=failed_fraction, rng=rng)

    @classmethod
    def _create_factors(cls, shape, rng, n_steps, n_cycles, v_max, noise,
                        failed_fraction) -> _Plan:
        """``variant='factors'``: six independent factors, each a smooth field over small
        patches mapped to a uniform distribution over its range."""
        from scipy.special import ndtr

        n_pos = shape[0] * shape[1]

        def factor(name: str) -> np.ndarray:
            lo, hi = FACTORS[name]
            return lo + (hi - lo) * ndtr(_smooth_field(rng, shape, 0.03).ravel())

        two_step = _smooth_field(rng, shape, 0.06).ravel() > 0  # ferroelastic domains
        vc, width = factor("coercive_voltage"), factor("switching_width")
        vc2, height = factor("step_voltage"), factor("step_height")
        imprint, soften = factor("imprint"), factor("softening")
        ones = np.ones(n_pos)
        phi0 = np.angle(np.exp(1j * (1.0 + 1.6 * _smooth_field(rng, shape, 0.35).ravel()
                                     + 0.05 * rng.standard_normal(n_pos))))
        perp = 0.06 * _smooth_field(rng, shape, 0.3).ravel()
        q0 = 180 + 25 * _smooth_field(rng, shape, 0.2).ravel()
        dc = triangle_waveform(n_steps, v_max)
        rising = np.gradient(np.concatenate([dc[-1:], dc, dc[:1]]))[1:-1] > 0
        step = np.where(two_step, height, 0.0)
        labels = two_step.astype(np.int8).reshape(shape)
        return cls(shape=shape, n_pos=n_pos, dc=dc, rising=rising, field_values=np.array([1, 0]),
                   n_cycles=int(n_cycles), labels=labels, mech=labels.ravel(),
                   loop_params=dict(amp=ones, width=width, vc=vc, imprint=imprint,
                                    slope=0.004 * ones, offset=0.0 * ones,
                                    vc2=np.where(two_step, vc2, np.nan), step=step,
                                    f0=1.325e6 * ones, soften=soften, harden=9e3 * step),
                   phi0=phi0, perp=perp, q0=q0, noise=noise,
                   failed_fraction=failed_fraction, rng=rng, variant="factors")

    @property
    def mechanism_names(self) -> tuple[str, ...]:
        return FACTOR_MECHANISMS if self.variant == "factors" else MECHANISMS

    @property
    def n_spec(self) -> int:
        return self.n_cycles * self.dc.size * 2

    @property
    def true_rotation(self) -> np.ndarray:
        return -self.phi0

    def parameters(self) -> dict:
        lp, s = self.loop_params, self.scale
        if self.variant == "factors":
            return {"coercive_voltage": lp["vc"], "switching_width": lp["width"],
                    "step_voltage": lp["vc2"],
                    "step_height": np.where(np.isnan(lp["vc2"]), np.nan, lp["step"]),
                    "imprint": lp["imprint"], "softening": lp["soften"]}
        return {
            "amplitude": lp["amp"] * s, "coercive_up": lp["vc"] + lp["imprint"],
            "coercive_down": lp["imprint"] - lp["vc"],
            "coercive_up_2": lp["vc2"] + lp["imprint"],
            "coercive_down_2": lp["imprint"] - lp["vc2"], "width": lp["width"],
            "imprint": lp["imprint"], "slope": lp["slope"] * s, "offset": lp["offset"] * s,
            "resonance_base": lp["f0"], "softening": lp["soften"], "hardening": lp["harden"],
        }

    def block(self, start: int, stop: int, draw) -> dict:
        """Per-value arrays of positions ``start:stop``, (positions, cycles, steps, fields).

        ``draw(k, size)`` returns the next ``size`` values of random stream ``k``; the
        streams are drawn in :data:`_DRAWS` order.
        """
        sl = slice(start, stop)
        n_pos, n_cycles, n_steps = stop - start, self.n_cycles, self.dc.size
        mech = self.mech[sl]
        scale = self.scale
        cyc = np.arange(n_cycles)[None, :, None, None]
        v = self.dc[None, None, :, None]
        up = self.rising[None, None, :, None]
        inf = self.field_values[None, None, None, :] == 1
        p = {k: val[sl, None, None, None] for k, val in self.loop_params.items()}
        wake = np.where(cyc == 0, 1.12, 1.0)  # first cycle switches a little harder
        c_up = p["imprint"] + p["vc"] * wake
        c_dn = p["imprint"] - p["vc"] * wake
        s1 = _branch_sigmoid(v, up, c_up, c_dn, p["width"])
        two_step = (mech == 2)[:, None, None, None]
        c2_up = p["imprint"] + np.nan_to_num(p["vc2"]) * wake
        c2_dn = p["imprint"] - np.nan_to_num(p["vc2"]) * wake
        s2 = _branch_sigmoid(v, up, c2_up, c2_dn, p["width"])
        if "step" in p:  # variant 'factors': a fraction 'step' switches at the second step
            two_step = p["step"] > 0
            state = (1 - p["step"]) * s1 + p["step"] * s2
        else:
            state = np.where(two_step, 0.5 * (s1 + s2), s1)
        loop = p["offset"] + p["amp"] * state + p["slope"] * v
        loop = loop + np.where(inf, 0.03 * v, 0.0)  # electrostatic contribution in field
        # resonance: softening while switching, hardening in the intermediate ferroelastic
        # state
        c_now = np.where(up, c_up, c_dn)
        softening = p["soften"] / np.cosh((v - c_now) / (1.5 * p["width"])) ** 2
        intermediate = np.where(two_step, 0.5 * np.abs(s1 - s2), 0.0)
        freq = p["f0"] - softening + p["harden"] * intermediate - np.where(inf, 8.0 * v**2,
                                                                            0.0)
        del s1, s2, state, c_now, softening, intermediate
        loop = np.broadcast_to(loop, (n_pos, n_cycles, n_steps, 2))
        freq = np.broadcast_to(freq, loop.shape)
        shp = loop.shape

        true_p = scale * loop
        z = scale * (loop + 1j * self.perp[sl, None, None, None]) * \
            np.exp(1j * self.phi0[sl])[:, None, None, None]
        z = z + scale * self.noise / np.sqrt(2) * (draw(0, shp) + 1j * draw(1, shp))
        amplitude = np.abs(z)
        phase = np.angle(z)
        del z
        frequency = freq + 250.0 * draw(2, shp)
        quality = np.broadcast_to(self.q0[sl, None, None, None], shp) * (
            1 + 0.05 * draw(3, shp))
        rel = amplitude / scale
        r2 = np.clip(0.985 - 0.25 * np.exp(-rel / 0.15) + 0.01 * draw(4, shp), 0.55, 0.999)
        del rel
        failed = draw(5, shp) < self.failed_fraction
        nan_fail = failed & (draw(6, shp) < 0.5)
        junk = failed & ~nan_fail
        amplitude = np.where(junk, scale * draw(7, shp), amplitude)
        phase = np.where(junk, draw(8, shp), phase)
        frequency = np.where(junk, draw(9, shp), frequency)
        r2 = np.where(junk, draw(10, shp), r2)
        for arr in (amplitude, phase, frequency, quality, r2):
            arr[nan_fail] = np.nan
        return {"amplitude": amplitude, "phase": phase, "frequency": frequency,
                "quality": np.array(quality), "r2": r2,
                "true_piezoresponse": np.ascontiguousarray(true_p),
                "true_resonance": np.ascontiguousarray(freq), "failed": failed}

    def blocks(self, chunk_positions: int):
        """Yield ``(slice, arrays)`` for consecutive blocks of at most ``chunk_positions``."""
        if chunk_positions >= self.n_pos:
            yield slice(0, self.n_pos), self.block(0, self.n_pos, _sequential_draws(self.rng))
            return
        per_pos = self.n_spec
        draw = _stream_draws(self.rng, self.n_pos * per_pos,
                             max(chunk_positions * per_pos, _CHUNK_VALUES))
        for start in range(0, self.n_pos, chunk_positions):
            stop = min(start + chunk_positions, self.n_pos)
            yield slice(start, stop), self.block(start, stop, draw)


def _check_shape(shape) -> tuple[int, int]:
    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"shape must be (rows, cols), got {shape!r}") from None
    if rows < 1 or cols < 1:
        raise ParameterError(f"shape must be positive, got {shape!r}")
    return rows, cols


def write_synthetic_beps(
    path: str | os.PathLike,
    shape: tuple[int, int] = (60, 60),
    seed: int = 0,
    raw_data: bool = False,
    dtype: str = "float32",
    overwrite: bool = False,
    chunk_positions: int | None = None,
    raw_snr: float | None = 25.0,
    **kwargs,
) -> str:
    """Write a synthetic BEPS measurement with ground truth as a USID HDF5 file.

    The map is generated and written a block of positions at a time, so memory stays
    bounded (a 256 x 256 map needs a few hundred MB); the values are those of
    :func:`make_synthetic_beps` with the same arguments, whatever the block size.

    Parameters
    ----------
    path : str or os.PathLike
        File to create.
    shape : (rows, cols)
        Grid size (60 x 60 like the PZT benchmark).
    seed : int
        Seed; the file content is a deterministic function of all parameters.
    raw_data : bool
        Also write a complex ``Raw_Data`` (SHO responses over 16 frequency bins,
        positions x (cycle, DC step, field, frequency), frequency fastest), so the layout
        matches a translated file. The responses follow BGlib's SHO model (peak ``A Q`` at
        phase ``phi + pi/2``) at the parameters of the stored ``Fit``, which is therefore
        the ground truth of an SHO fit of ``Raw_Data``. Written a block of positions at a
        time (about 6 kB per position and spectroscopic step on disk).
    dtype : {'float32', 'float64'}
        Precision of the SHO compound (BGlib has written both).
    overwrite : bool
        Replace an existing file; otherwise an existing path raises.
    chunk_positions : int, optional
        Positions generated and written at a time (default: about 500,000 values,
        1,365 positions of 384 steps). Only memory use and speed depend on it.
    raw_snr : float or None
        Signal-to-noise ratio of ``Raw_Data`` at the resonance peak: complex Gaussian noise
        of standard deviation ``A Q / raw_snr`` (each spectrum's peak magnitude) is added
        to every bin (default 25, realistic for band excitation; None: the exact model
        response). Its random streams are drawn per position from ``seed``, so nothing
        else in the file depends on ``raw_data`` or ``raw_snr``. The stored ``Fit`` and
        ``/Ground_Truth`` stay the noise-free truth.
    **kwargs
        Passed to :func:`make_synthetic_beps` (``n_steps``, ``n_cycles``, ``v_max``,
        ``noise``, ``failed_fraction``, ``variant``).

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r") as f:
    ...     print(f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"].shape)
    (20, 384)

    Blocks of 7 positions give the same file content:

    >>> other = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5),
    ...                              chunk_positions=7)
    >>> with h5py.File(path, "r") as a, h5py.File(other, "r") as b:
    ...     name = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"
    ...     print(a[name][()].tobytes() == b[name][()].tobytes())
    True
    """
    path = os.fspath(path)
    if dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    chunk_positions = check("chunk_positions", chunk_positions,
                            Either((Literal(None), Integer(low=1))))
    check_new_file(path, overwrite)
    shape = _check_shape(shape)
    if raw_snr is not None:
        raw_snr = float(check("raw_snr", raw_snr, Real(low=0.0, low_open=True)))
    bound = inspect.signature(make_synthetic_beps).bind(shape, seed, **kwargs)
    bound.apply_defaults()
    plan = _Plan.create(**bound.arguments)
    n_pos, n_spec = plan.n_pos, plan.n_spec
    n_steps = plan.dc.size
    if chunk_positions is None:
        chunk_positions = max(1, _CHUNK_VALUES // n_spec)
    spacing = 2e-6 / max(shape)
    pos_dims = make_dims([("Y", "m", np.arange(shape[0]) * spacing),
                          ("X", "m", np.arange(shape[1]) * spacing)])
    spec_dims = make_dims([("Cycle", "", np.arange(plan.n_cycles)),
                           ("DC_Offset", "V", plan.dc),
                           ("Field", "", plan.field_values)])
    fdt = np.dtype(dtype)
    sho_dtype = np.dtype([(f, fdt) for f in SHO_FIELDS])
    with new_h5_file(path) as f:
        write_attrs(f, {"data_type": "BEPSData", "translator": "pycroscopy_bevae.synthetic",
                        "synthetic": True, "seed": int(seed), "generator_version": __version__})
        if plan.variant != "mechanisms":  # the default file stays as it was
            f.attrs["variant"] = plan.variant
        meas = f.create_group("Measurement_000")
        write_attrs(meas, {
            "data_type": "BEPSData", "VS_mode": "DC modulation mode",
            "VS_steps_per_full_cycle": int(n_steps), "VS_number_of_cycles": int(plan.n_cycles),
            "VS_measure_in_field_loops": "in and out-of-field",
            "VS_amplitude_[V]": float(np.abs(plan.dc).max()),
            "BE_center_frequency_[Hz]": 1.325e6, "BE_band_width_[Hz]": 6e4,
            "grid_num_rows": int(shape[0]), "grid_num_cols": int(shape[1]),
            "grid_scan_height_[m]": float(shape[0] * spacing),
            "grid_scan_width_[m]": float(shape[1] * spacing),
        })
        chan = meas.create_group("Channel_000")
        raw = _create_raw(chan, plan, pos_dims, raw_snr) if raw_data else None
        grp = chan.create_group("Raw_Data-SHO_Fit_000")
        write_attrs(grp, {"SHO_fit_method": "synthetic (exact parameters + noise)",
                          "SHO_guess_method": "none", "last_pixel": n_pos})
        fit = write_main(grp, (n_pos, n_spec), "Fit", "SHO model", "compound", pos_dims,
                         spec_dims, dtype=sho_dtype)
        grp.create_dataset("completed_positions", data=np.ones(n_pos, dtype=np.uint8))
        truth = _create_truth(f, plan, fit)
        for sl, c in plan.blocks(chunk_positions):
            m = sl.stop - sl.start
            sho = np.empty((m, n_spec), dtype=sho_dtype)
            for name, key in zip(SHO_FIELDS, ("amplitude", "frequency", "quality", "phase",
                                              "r2"), strict=True):
                sho[name] = c[key].reshape(m, n_spec)
            fit[sl] = sho
            truth["Piezoresponse"][sl] = c["true_piezoresponse"].reshape(m, n_spec)
            truth["Resonance"][sl] = c["true_resonance"].reshape(m, n_spec)
            truth["Failed_Fit"][sl] = c["failed"].reshape(m, n_spec)
            if raw is not None:
                raw[sl] = _raw_response(c, m, n_spec, raw_snr, seed, sl.start)
    return path


def _raw_frequencies() -> np.ndarray:
    w_rel = np.linspace(-0.025, 0.025, _RAW_BINS)
    return 1.325e6 * (1 + w_rel)


def _create_raw(chan: h5py.Group, plan: _Plan, pos_dims: list,
                raw_snr: float | None) -> h5py.Dataset:
    """Empty complex ``Raw_Data``: SHO responses over a frequency band around each resonance."""
    spec = make_dims([("Cycle", "", np.arange(plan.n_cycles)), ("DC_Offset", "V", plan.dc),
                      ("Field", "", plan.field_values), ("Frequency", "Hz", _raw_frequencies())])
    raw = write_main(chan, (plan.n_pos, plan.n_spec * _RAW_BINS), "Raw_Data", "Piezoresponse",
                     "V", pos_dims, spec, dtype=np.complex64)
    raw.attrs["snr_at_peak"] = np.inf if raw_snr is None else raw_snr
    return raw


def _raw_response(c: dict, n_pos: int, n_spec: int, raw_snr: float | None = None,
                  seed: int = 0, first: int = 0) -> np.ndarray:
    """The complex response over the frequency band, in BGlib's SHO convention
    (``A e^{i phi} w0^2 / (w^2 - i w w0 / Q - w0^2)``, peak ``A Q e^{i (phi + pi/2)}``), so
    that an SHO fit of ``Raw_Data`` gives back the stored ``Fit``; with ``raw_snr``, plus
    complex noise of standard deviation ``A Q / raw_snr`` drawn per position (positions
    ``first``, ``first + 1``, ...: the same values whatever the block)."""
    w = _raw_frequencies()[None, None, :]
    amp = c["amplitude"].reshape(n_pos, n_spec)
    z = amp * np.exp(1j * c["phase"].reshape(n_pos, n_spec))
    wr = c["frequency"].reshape(n_pos, n_spec)[..., None]
    q = c["quality"].reshape(n_pos, n_spec)[..., None]
    with np.errstate(invalid="ignore"):  # failed (NaN) fits stay NaN, then become 0
        resp = z[..., None] * wr**2 / (w**2 - 1j * w * wr / q - wr**2)
        if raw_snr is not None:
            shp = (n_spec, _RAW_BINS, 2)
            unit = np.stack([np.random.default_rng([int(seed), _RAW_NOISE_TAG, first + i])
                             .standard_normal(shp) for i in range(n_pos)])
            sigma = (amp[..., None] * q / raw_snr) / np.sqrt(2)
            resp = resp + sigma * (unit[..., 0] + 1j * unit[..., 1])
    return np.nan_to_num(resp).astype(np.complex64).reshape(n_pos, n_spec * _RAW_BINS)


def _create_truth(f: h5py.File, plan: _Plan, fit: h5py.Dataset) -> h5py.Group:
    """The ground-truth group; the per-value datasets are created empty (filled by blocks)."""
    n_pos, n_spec = plan.n_pos, plan.n_spec
    gt = f.create_group("Ground_Truth")
    write_attrs(gt, {
        "description": "Exact values used to generate the synthetic SHO fits. Loops follow the "
                       "column order of the Fit dataset they describe.",
        "source_dataset": fit.name,
        "convention": "A cos(phi + Rotation_Angle) recovers Piezoresponse; loops correlate "
                      "positively with the DC bias",
    })
    mech = gt.create_dataset("Mechanism", data=plan.labels)
    write_attrs(mech, {"labels": list(plan.mechanism_names), "shape": "rows x cols (Y x X)"})
    gt.create_dataset("Piezoresponse", shape=(n_pos, n_spec), dtype=np.float64)
    gt["Piezoresponse"].attrs["units"] = "V"
    gt.create_dataset("Resonance", shape=(n_pos, n_spec), dtype=np.float64)
    gt["Resonance"].attrs["units"] = "Hz"
    gt.create_dataset("Rotation_Angle", data=plan.true_rotation)
    gt["Rotation_Angle"].attrs["units"] = "rad"
    gt.create_dataset("Failed_Fit", shape=(n_pos, n_spec), dtype=bool)
    params = gt.create_group("Loop_Parameters")
    for name, arr in plan.parameters().items():
        params.create_dataset(name, data=np.asarray(arr, dtype=float))
    if plan.variant == "factors":
        write_attrs(params, {"factors": list(FACTORS), "description": (
            "the independent factors that generate every loop (NaN: not defined at a "
            "position that switches in one step)")})
    return gt
