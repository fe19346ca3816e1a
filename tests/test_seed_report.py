"""The report's seed agreement: beta-VAE results that differ only in their seed."""

from __future__ import annotations

import h5py
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from pycroscopy_bevae import BetaVAEProcess  # noqa: E402
from pycroscopy_bevae.analysis import read_model_result, seed_agreement  # noqa: E402
from pycroscopy_bevae.report import make_report, seed_lines  # noqa: E402
from tests.helpers import PROJ_GROUP, TINY_VAE, projected_map  # noqa: E402


@pytest.mark.slow
def test_the_report_gives_the_seed_agreement_of_runs_that_differ_in_their_seed(tmp_path):
    path = projected_map(tmp_path / "p.h5", shape=(6, 5), seed=3)
    with h5py.File(path, "r+") as f:
        groups = [BetaVAEProcess(f[PROJ_GROUP], **dict(TINY_VAE, random_state=seed)).compute()
                  .name for seed in (0, 1)]
        other = BetaVAEProcess(f[PROJ_GROUP], **dict(TINY_VAE, epochs=2)).compute().name
        res = [read_model_result(f[g]) for g in groups]
        alone = read_model_result(f[other])
    want = seed_agreement([r.embedding[:, r.active] for r in res]).mcc
    lines = seed_lines([*res, alone])  # the run with other epochs has no partner
    assert len(lines) == 1 and f"MCC {want:.2f}" in lines[0] and "seeds 0, 1" in lines[0]
    assert seed_lines([res[0], alone]) == []
    rep = make_report(str(path), str(tmp_path / "report"), animations=False)
    with open(rep.markdown) as fh:
        assert lines[0] in fh.read()
    assert 0.0 <= want <= 1.0 and np.isfinite(want)
