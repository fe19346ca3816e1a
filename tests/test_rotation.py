"""The independent-axes rotation of the active channels (``rotation='ica'``, issue 22
item 3): known sources come back one per channel, the map is exact and stored with the
model, and the written embedding, decoder and reconstruction stay consistent."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import BetaVAEProcess, load_beta_vae
from pycroscopy_bevae.analysis import read_model_result, seed_agreement
from pycroscopy_bevae.exceptions import ParameterError
from pycroscopy_bevae.models import BetaVAE
from pycroscopy_bevae.models.rotation import LatentRotation, fit_rotation
from pycroscopy_bevae.report import comparison_rows
from tests.helpers import PROJ_GROUP, projected_map


def _sources(n=3000, seed=0):
    """Three independent non-Gaussian sources (uniform, Laplace, bimodal)."""
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-1, 1, n), rng.laplace(size=n),
                 rng.choice([-1.0, 1.0], n) + 0.3 * rng.normal(size=n)]


def test_mixed_sources_come_back_one_per_channel():
    s = _sources()
    mix = np.random.default_rng(1).normal(size=(3, 3))
    z = np.zeros((len(s), 5))
    z[:, [0, 2, 4]] = s @ mix.T + [0.5, -1.0, 2.0]  # channels 1 and 3 inactive (0)
    rot = fit_rotation(z, np.array([0, 2, 4]), random_state=0)
    r = rot.forward(z)
    assert np.all(r[:, [1, 3]] == 0)  # inactive channels untouched
    # each rotated channel is one source (matched |corr| > 0.98), which the raw mixture
    # is not (the best raw channel explains a source far less)
    agreement = seed_agreement([r[:, [0, 2, 4]], s])
    assert agreement.mcc > 0.98
    assert seed_agreement([z[:, [0, 2, 4]], s]).mcc < 0.9
    np.testing.assert_allclose(r[:, [0, 2, 4]].std(axis=0), 1.0, rtol=1e-3)  # unit variance
    np.testing.assert_allclose(r[:, [0, 2, 4]].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(rot.inverse(r), z, atol=1e-9)  # exact and invertible
    np.testing.assert_allclose(rot.mixing @ rot.unmixing, np.eye(3), atol=1e-9)


def test_the_rotation_is_deterministic_and_ordered():
    z = _sources() @ np.random.default_rng(2).normal(size=(3, 3)).T
    a, b = (fit_rotation(z, np.arange(3), random_state=5) for _ in range(2))
    np.testing.assert_array_equal(a.unmixing, b.unmixing)
    norms = np.linalg.norm(a.mixing, axis=0)
    assert np.all(np.diff(norms) <= 0)  # the component that moves the latents most first
    cols = np.arange(3)
    assert np.all(a.mixing[np.argmax(np.abs(a.mixing), axis=0), cols] > 0)  # sign rule
    back = LatentRotation.from_dict(a.to_dict())
    np.testing.assert_array_equal(back.forward(z), a.forward(z))
    assert LatentRotation.from_dict(None) is None
    assert fit_rotation(z, np.array([], int)) is None  # no active channel: nothing to do
    assert fit_rotation(z[:5], np.arange(3)) is None  # too few positions for 3 axes


def _curves(n=300, seed=0):
    """Spectra made of two independent shapes (non-Gaussian weights)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 6, 20)
    return (np.sin(t)[None] * rng.uniform(-1, 1, (n, 1))
            + np.cos(2 * t)[None] * rng.laplace(0, 0.5, (n, 1)))


KW = dict(preset="fast", units=8, embedding_dim=4, latent_dim=3, epochs=4, prime_epochs=2,
          round_updates=0, relax_epochs=0, beta_growth=1.0, step_epochs=1, beta_start=0.001,
          batch_size=32)


def test_the_estimator_rotates_its_embedding_and_keeps_its_reconstruction():
    X = _curves()
    plain = BetaVAE(**KW, rotation="none").fit(X, progress=False)
    rotated = BetaVAE(**KW).fit(X, progress=False)  # independent axes: the default
    assert rotated.resolved_params()["rotation"] == "ica"
    assert plain.rotation_ is None and rotated.rotation_ is not None
    active = rotated.active_channels()
    assert active.size >= 2
    np.testing.assert_array_equal(rotated.rotation_.channels, active)
    # the same training (same seed), the same reconstruction: the map is undone by decode
    np.testing.assert_allclose(rotated.reconstruct(X), plain.reconstruct(X), atol=1e-5)
    z = rotated.transform(X)
    np.testing.assert_allclose(rotated.decode(z), rotated.reconstruct(X)[..., None], atol=1e-6)
    np.testing.assert_allclose(z, rotated.rotate(plain.transform(X)), atol=1e-5)
    # unit variance on the training positions (those not held out)
    train = np.setdiff1d(np.arange(len(X)), rotated.validation_index_)
    np.testing.assert_allclose(z[train][:, active].std(axis=0), 1.0, rtol=1e-3)
    inactive = np.setdiff1d(np.arange(3), active)
    assert np.all(z[:, inactive] == 0)
    # stored with the model: a rebuilt estimator gives the same embedding
    again = BetaVAE.from_config(rotated.get_config(), rotated.model_.get_weight_arrays())
    np.testing.assert_array_equal(again.transform(X), z)
    # and a reload that selects a snapshot again (load_beta_vae(snapshot=/n_active=),
    # no validation_index_) refits the same rotation from the snapshot
    again.snapshots_ = rotated.snapshots_
    again.use_snapshot(rotated.selected_)
    np.testing.assert_allclose(again.transform(X), z, atol=1e-9)
    with pytest.raises(ParameterError, match="rotation"):
        BetaVAE(rotation="varimax").resolved_params()


@pytest.mark.slow
def test_the_process_writes_the_rotated_embedding_consistently(tmp_path):
    src = projected_map(tmp_path / "p.h5", shape=(6, 5), seed=3)
    kw = dict(units=4, embedding_dim=4, latent_dim=4, round_updates=0, beta_growth=1.0,
              step_epochs=1, beta_start=0.001, batch_size=16, random_state=0, progress=False,
              epochs=4, prime_epochs=2, relax_epochs=0, validation_fraction=0)
    with h5py.File(src, "r+") as f:
        plain = BetaVAEProcess(f[PROJ_GROUP], **kw, rotation="none").compute()
        grp = BetaVAEProcess(f[PROJ_GROUP], **kw).compute()  # independent axes: the default
        assert grp.name != plain.name  # not a duplicate of the unrotated run
        assert grp.attrs["rotation"] == "ica" and "rotation" not in plain.attrs
        emb, recon = grp["Embedding"][()], grp["Reconstruction"][()]
        np.testing.assert_allclose(recon, plain["Reconstruction"][()], atol=1e-5)
        active = np.asarray(grp.attrs["Active_Channels"], int)
        np.testing.assert_allclose(emb[:, active].std(axis=0), 1.0, rtol=0.05)
        vae, _ = load_beta_vae(grp)
        out = vae.decode(emb)  # the written embedding decodes to the written reconstruction
        np.testing.assert_allclose(np.moveaxis(out, 2, 1).reshape(len(emb), -1), recon,
                                   atol=1e-5)
        # the report says which axes the channels are in
        rows = comparison_rows([read_model_result(g) for g in (plain, grp)])
        assert rows[0]["channels (active / total)"].endswith("/ 4")
        assert rows[1]["channels (active / total)"].endswith("/ 4 (independent axes)")
        # the unrotated run is still found as a duplicate at rotation='none', and only
        # it: a parameter left out at its earlier value must not match a group that
        # records another value (pyUSID alone matches the recorded parameters only)
        again = BetaVAEProcess(f[PROJ_GROUP], **kw, rotation="none")
        assert [g.name for g in again.duplicate_h5_groups] == [plain.name]
