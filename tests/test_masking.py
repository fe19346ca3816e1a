"""k active channels mean k channels on every route: the inactive channels of the
selected snapshot are masked in the written Embedding / Reconstruction and the stored model.

Tiny real runs (4-unit LSTMs, a few epochs) of the process on a projected 6 x 5 map: the
fast preset with and without the relax phase and the paper preset.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import BetaVAEProcess, load_beta_vae
from tests.helpers import PROJ_GROUP, projected_map

TINY = dict(units=4, embedding_dim=4, latent_dim=4, round_updates=0, beta_growth=1.0,
            step_epochs=1, beta_start=0.3, batch_size=16, random_state=0, progress=False,
            checkpoint_every=50)

ROUTES = {
    "fast": dict(TINY, preset="fast", epochs=5, prime_epochs=2, relax_epochs=0),
    "fast_relax": dict(TINY, preset="fast", epochs=5, prime_epochs=2, relax_epochs=2),
    "paper": dict(TINY, preset="paper", n_blocks=1, epochs=5, prime_epochs=2,
                  learning_rate=1e-2, beta_start=0.02, beta_step=0.02, kl_threshold=0.02),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_zeroing_the_inactive_channels_of_the_written_model_changes_nothing(route, tmp_path):
    src = projected_map(tmp_path / "p.h5", shape=(6, 5), seed=3)
    with h5py.File(src, "r+") as f:
        grp = BetaVAEProcess(f[PROJ_GROUP], **ROUTES[route]).compute()
        emb = grp["Embedding"][()]
        recon = grp["Reconstruction"][()]
        active = np.asarray(grp.attrs["Active_Channels"], int)
        vae, _ = load_beta_vae(grp)
    inactive = np.setdiff1d(np.arange(emb.shape[1]), active)
    assert active.size == vae.n_active() == np.count_nonzero(vae.channel_mask())
    assert 1 <= active.size < 4  # some channels are inactive: the masking is exercised
    # the written embedding is exactly 0 on the inactive channels
    assert np.all(emb[:, inactive] == 0)
    # decoding the embedding with the inactive channels zeroed gives the written
    # reconstruction: whatever they held, they do not reach it
    z = emb.copy()
    z[:, inactive] = 0.0
    rng = np.random.default_rng(0)
    noisy = z.copy()
    noisy[:, inactive] = rng.normal(size=(len(z), inactive.size))
    for latent in (z, noisy):
        out = vae.decode(latent)  # (n, steps, modalities), modality-major when written
        np.testing.assert_allclose(np.moveaxis(out, 2, 1).reshape(len(z), -1), recon,
                                   atol=1e-5)

