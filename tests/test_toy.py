"""Toy benchmark data: the paper's formula and its training/validation sets."""

from __future__ import annotations

import numpy as np
import pytest

from pycroscopy_bevae import MissingFileError, ParameterError
from pycroscopy_bevae.datasets import (
    default_image,
    toy_gamut_set,
    toy_image_set,
    toy_spectra,
    toy_training_set,
)
from tests.helpers import SHARED_DATA


def _reference(r, g, b, t):
    """The formula of METHOD.md section 2, written out for one colour."""
    selu = lambda x: 1.0507009873554805 * (x if x > 0 else 1.6732632423543772 * (np.exp(x) - 1))  # noqa: E731
    return np.array([np.tanh(20 * (ti - 2 * (r - 0.5))) + selu(ti - 2 * (g - 0.5))
                     + 1 / (1 + np.exp(20 * (ti - (b - 0.5)))) for ti in t])


def test_formula_against_scalar_reference():
    rng = np.random.default_rng(0)
    rgb = rng.random((20, 3))
    out = toy_spectra(rgb, n_steps=25)
    t = np.linspace(-1, 1, 25)
    for i in range(20):
        np.testing.assert_allclose(out[i], _reference(*rgb[i], t), rtol=1e-12, atol=1e-12)


def test_red_sets_the_position_of_the_tanh_step():
    t = np.linspace(-1, 1, 201)
    for r in (0.3, 0.5, 0.7):
        s = toy_spectra([r, 0.5, 0.5], n_steps=201)
        # the steepest rise is the tanh step at t = 2 (R - 0.5)
        assert t[np.argmax(np.diff(s))] == pytest.approx(2 * (r - 0.5), abs=0.02)
    base = toy_spectra([0.5, 0.5, 0.5])
    assert not np.allclose(toy_spectra([0.5, 0.8, 0.5]), base)
    assert not np.allclose(toy_spectra([0.5, 0.5, 0.8]), base)


def test_sets():
    tr = toy_training_set(500, seed=3)
    assert tr.spectra.shape == (500, 25) and tr.rgb.min() >= 0 and tr.rgb.max() <= 1
    np.testing.assert_array_equal(tr.rgb, toy_training_set(500, seed=3).rgb)
    assert not np.array_equal(tr.rgb, toy_training_set(500, seed=4).rgb)
    g = toy_gamut_set(5)
    assert g.spectra.shape == (125, 25)
    assert {tuple(c) for c in g.rgb[[0, -1]]} == {(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)}
    with pytest.raises(ParameterError, match="n must be"):
        toy_training_set(0)


def test_image_set_default_and_array():
    img = default_image()
    assert img.ndim == 3 and img.shape[2] == 3
    s = toy_image_set(stride=16)
    assert s.image_shape == ((img.shape[0] + 15) // 16, (img.shape[1] + 15) // 16)
    assert s.spectra.shape == (s.image_shape[0] * s.image_shape[1], 25)
    arr = np.zeros((6, 4, 3), np.uint8)
    arr[..., 0] = 255
    s2 = toy_image_set(arr, stride=1, crop=(slice(0, 4), slice(1, 3)))
    assert s2.image_shape == (4, 2)
    np.testing.assert_allclose(s2.rgb, [[1.0, 0.0, 0.0]] * 8)
    with pytest.raises(ParameterError, match="RGB"):
        toy_image_set(np.zeros((4, 4)))
    with pytest.raises(MissingFileError):
        toy_image_set("no_such_image.jpg")


def test_paper_image():
    nala = SHARED_DATA / "toy" / "nala.jpg"
    if not nala.exists():
        pytest.skip(f"paper image not available ({nala})")
    s = toy_image_set(nala, stride=20)
    assert s.image_shape == (103, 80)  # 2048 x 1594 pixels (rows x cols), every 20th
    assert 0 <= s.rgb.min() and s.rgb.max() <= 1
