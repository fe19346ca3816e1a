"""Validation figures, animations, the report and the demo, on real (tiny) fitted results."""

import os

import h5py
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from pycroscopy_bevae import (  # noqa: E402
    BetaVAEProcess,
    DictionaryLearningProcess,
    LoopFitProcess,
    LoopProjector,
    write_synthetic_beps,
)
from pycroscopy_bevae.analysis import (  # noqa: E402
    factor_scores,
    find_results,
    latent_traversal,
    read_loop_fit,
    read_model_result,
)
from pycroscopy_bevae.cli import main  # noqa: E402
from pycroscopy_bevae.exceptions import BEPSFormatError, ParameterError  # noqa: E402
from pycroscopy_bevae.report import make_report  # noqa: E402
from pycroscopy_bevae.viz import (  # noqa: E402
    animate_snapshots,
    animate_traversal,
    jupyter_traversal,
    plot_embedding_maps,
    plot_error_maps,
    plot_error_violins,
    plot_reconstructions,
    plot_training_history,
    plot_traversals,
)
from tests.helpers import TINY_NET, file_digest  # noqa: E402

TINY = dict(TINY_NET, units=8, embedding_dim=8, latent_dim=4, epochs=5, prime_epochs=2,
            batch_size=32)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A 10 x 10 synthetic file with a projection, dictionary learning and a tiny beta-VAE."""
    path = str(tmp_path_factory.mktemp("fitted") / "s.h5")
    write_synthetic_beps(path, shape=(10, 10), seed=1)
    with h5py.File(path, "r+") as f:
        proj = LoopProjector(f, progress=False).compute()
        dl = DictionaryLearningProcess(proj, n_components=3).compute()
        vae = BetaVAEProcess(proj, progress=False, **TINY).compute()
        fit = LoopFitProcess(proj["Piezoresponse"], progress=False).compute()
        names = {"proj": proj.name, "dl": dl.name, "vae": vae.name, "fit": fit.name}
    return path, names


def test_find_and_read_results(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        found = find_results(f)
        assert found == {"projection": [names["proj"]], "dictionary": [names["dl"]],
                         "beta_vae": [names["vae"]], "loop_fit": [names["fit"]]}
        dl = read_model_result(f[names["dl"]])
        vae = read_model_result(f[names["vae"]])
        # the re-read data and stored reconstruction reproduce the stored errors
        for res in (dl, vae):
            err = np.mean([((r - d) ** 2).mean(axis=1)
                           for r, d in zip(res.reconstruction, res.data, strict=True)], axis=0)
            np.testing.assert_allclose(err, res.errors, rtol=1e-4, atol=1e-7)
            assert res.grid_shape == (10, 10)
            assert res.names == ["Piezoresponse", "Resonance"]
        # the positions the beta-VAE held out are found again: their error is the held-out
        # error its training measured for the selected model
        assert dl.held_out.size == 0
        assert vae.held_out.size == vae.attrs["n_validation_positions"] == 10
        assert np.mean(vae.errors[vae.held_out]) == pytest.approx(
            vae.attrs["selected_val_recon_mse"], rel=1e-5)
        # decoding the stored embedding gives the stored reconstruction
        np.testing.assert_allclose(dl.decode(dl.embedding)[0], dl.reconstruction[0], atol=1e-6)
        np.testing.assert_allclose(vae.decode(vae.embedding)[1], vae.reconstruction[1],
                                   atol=1e-4)
        with pytest.raises(BEPSFormatError, match="not a dictionary-learning or beta-VAE"):
            read_model_result(f[names["proj"]])


def test_embedding_maps_show_the_coefficients(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        fig, axes = plot_embedding_maps(f[names["dl"]])
        codes = f[names["dl"]]["Coefficients"][()]
    titles = [ax.get_title() for ax in axes.ravel() if ax.images]
    assert titles == ["coefficient 0", "coefficient 1", "coefficient 2"]
    np.testing.assert_allclose(axes.ravel()[1].images[0].get_array(), codes[:, 1].reshape(10, 10))
    with pytest.raises(ParameterError, match="grid_shape"):
        plot_embedding_maps(codes)


def test_reconstructions_best_median_worst(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        dl = read_model_result(f[names["dl"]])
        fig, axes = plot_reconstructions([f[names["dl"]], f[names["vae"]]])
    assert axes.shape == (3, 2)
    assert [ax.get_title() for ax in axes[0]] == ["Piezoresponse", "Resonance"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["best", "median", "worst"]
    best = int(np.argmin(dl.errors))
    data_line = axes[0, 0].lines[0]
    np.testing.assert_allclose(data_line.get_ydata(), dl.data[0][best])
    # data + one line per model, labelled with each model's error at that position
    labels = [line.get_label() for line in axes[0, 1].lines]
    assert labels[0] == "data" and labels[1].startswith("dictionary learning (MSE")
    assert labels[2].startswith("beta-VAE (MSE")


def test_error_maps_share_one_scale(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        fig, axes = plot_error_maps([f[names["dl"]], f[names["vae"]]])
        e_vae = f[names["vae"]]["Reconstruction_Error"][:, 0]
    assert axes[0].images[0].get_clim() == axes[1].images[0].get_clim()
    np.testing.assert_allclose(axes[1].images[0].get_array(), e_vae.reshape(10, 10))
    lo, hi = axes[0].images[0].get_clim()
    assert hi == pytest.approx(max(e_vae.max(), axes[0].images[0].get_array().max()))


def test_error_violins_one_per_index_and_model(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        fig, axes = plot_error_violins([f[names["dl"]], f[names["vae"]]], every=12)
    assert len(axes) == 2
    # 96 steps every 12 -> 8 indices; 2 models -> 16 bodies + 2 median line collections
    assert len(axes[0].collections) == 18
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == \
        ["dictionary learning", "beta-VAE"]


def test_traversals_of_dictionary_atoms(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        fig, axes = plot_traversals(f[names["dl"]], n_values=5, k=10)
        atoms = f[names["dl"]]["Dictionary"][()]
        codes = f[names["dl"]]["Coefficients"][()]
    assert axes.shape == (3, 3)
    # the drawn spectra are the k-nearest-mean latent vectors through the atoms
    t = latent_traversal(codes, lambda z: z @ atoms, channel=0, n_values=5, k=10)
    lines = axes[0, 1].lines
    assert len(lines) == 5
    for line, spec in zip(lines, t.spectra, strict=True):
        np.testing.assert_allclose(line.get_ydata()[:96], spec[:96], rtol=1e-6)
        assert line.get_ydata()[-1] == line.get_ydata()[0]  # the loop is closed
    np.testing.assert_allclose(axes[0, 0].images[0].get_array(), codes[:, 0].reshape(10, 10))


def test_training_history_figure(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        grp = f[names["vae"]]
        fig, axes = plot_training_history(grp)
        hist = grp["Training_History"]
        beta = hist[:, list(hist.attrs["columns"]).index("beta")]
        n_active = grp["Embedding_Snapshots"].attrs["n_active"]
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), beta)
    assert len(axes[0].lines[0].get_xdata()) == TINY["epochs"]
    np.testing.assert_array_equal(axes[2].lines[1].get_ydata(), n_active)


def _gif_frames(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.n_frames


def test_animations_write_gifs(fitted, tmp_path):
    path, names = fitted
    with h5py.File(path, "r") as f:
        n_snaps = f[names["vae"]]["Embedding_Snapshots"].shape[0]
        out = animate_snapshots(f[names["vae"]], str(tmp_path / "snaps.gif"))
        assert _gif_frames(out) == n_snaps
        out = animate_traversal(f[names["dl"]], 1, str(tmp_path / "trav.mp4"), n_frames=6, k=10)
    from matplotlib import animation

    if animation.writers.is_available("ffmpeg"):
        assert out.endswith(".mp4") and os.path.getsize(out) > 0
    else:  # falls back to a GIF with a warning
        assert out == str(tmp_path / "trav.gif")
        assert _gif_frames(out) == 6
    with pytest.raises(ParameterError, match=".gif or .mp4"), h5py.File(path, "r") as f:
        animate_traversal(f[names["dl"]], 0, str(tmp_path / "x.avi"))


def test_jupyter_viewer_degrades_without_widgets(fitted):
    path, names = fitted
    with h5py.File(path, "r") as f:
        out = jupyter_traversal(f[names["dl"]], channel=2, n_values=4, k=10)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        fig, axes = out
        assert axes[0].get_title().endswith("channel 2")
    else:
        assert hasattr(out, "children")


@pytest.mark.slow
def test_report_reads_only_and_fills_the_table(fitted, tmp_path):
    path, names = fitted
    before = file_digest(path)
    rep = make_report(path, str(tmp_path / "rep"), animations=True)
    assert file_digest(path) == before
    with h5py.File(path, "r") as f:
        mse_dl = float(f[names["dl"]].attrs["mse"])
        mse_vae = float(f[names["vae"]].attrs["mse"])
    by_model = {r["model"]: r for r in rep.rows}
    assert by_model["dictionary learning"]["MSE (scaled)"] == pytest.approx(mse_dl, rel=1e-5)
    assert by_model["beta-VAE"]["MSE (scaled)"] == pytest.approx(mse_vae, rel=1e-5)
    assert by_model["dictionary learning"]["channels (active / total)"] == "3 / 3"
    # train and held-out positions: only the beta-VAE held positions out
    assert by_model["dictionary learning"]["MSE held-out positions"] is None
    assert by_model["dictionary learning"]["MSE training positions"] == pytest.approx(mse_dl,
                                                                                     rel=1e-5)
    with h5py.File(path, "r") as f:
        val_mse = float(f[names["vae"]].attrs["selected_val_recon_mse"])
    assert by_model["beta-VAE"]["MSE held-out positions"] == pytest.approx(val_mse, rel=1e-5)
    assert (0.9 * by_model["beta-VAE"]["MSE training positions"]
            + 0.1 * by_model["beta-VAE"]["MSE held-out positions"]) == pytest.approx(mse_vae,
                                                                                   rel=1e-5)
    # synthetic file: the ground-truth agreement is measured (DL clusters the mechanisms)
    assert 0.2 < by_model["dictionary learning"]["mechanism ARI"] <= 1.0
    assert by_model["dictionary learning"]["loop-parameter R^2"] > 0.3
    for fig in rep.figures.values():
        assert os.path.getsize(fig) > 1000
    assert {"projection", "reconstructions", "error_maps", "error_violins",
            "training_history", "snapshots_animation"} <= set(rep.figures)
    html = open(rep.html, encoding="utf-8").read()
    md = open(rep.markdown, encoding="utf-8").read()
    assert "<table>" in html and "mechanism ARI" in html and "MSE held-out positions" in md
    assert "Held-out positions: those the beta-VAE did not train on" in html
    assert f"{mse_dl:.4g}" in md and "reconstructions.png" in md
    # known physics: the dictionary's channels against the loop fit of the loops it saw
    with h5py.File(path, "r") as f:
        dl = read_model_result(f[names["dl"]])
        params = read_loop_fit(f[names["fit"]], cycle=int(dl.attrs["cycle"]), field="off")
    expected = factor_scores(dl.embedding[:, dl.active],
                             {"Coercive_Voltage_Up": params["Coercive_Voltage_Up"]})
    line = next(t for t in md.splitlines() if t.startswith("dictionary learning vs the loop"))
    assert "Piezoresponse-Loop_Fit_000" in line and "field off" in line
    assert f"coercive voltage up R^2 {expected['Coercive_Voltage_Up']['r2']:.2f}" in line


@pytest.mark.slow
def test_report_cli_and_errors(fitted, tmp_path, capsys):
    path, _ = fitted
    assert main(["report", path, "--out", str(tmp_path / "r"), "--no-animations"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and "dictionary learning" in out
    assert os.path.isfile(tmp_path / "r" / "report.html")
    assert not any(p.endswith(".gif") for p in os.listdir(tmp_path / "r"))
    bare = write_synthetic_beps(str(tmp_path / "bare.h5"), shape=(4, 4))
    assert main(["report", bare]) == 2
    err = capsys.readouterr().err
    assert "holds no complete loop projection" in err and "Traceback" not in err


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[2/8] sho fit -> " in text and "[8/8] toy benchmark" in text
    assert text.strip().splitlines()[-1].startswith("Done in")
    assert (out / "report" / "projection.png").stat().st_size > 10_000
    md = (out / "report" / "report.md").read_text()
    assert "median loop correlation 0.99" in md  # projection checked against the truth
    assert os.path.isfile(out / "toy" / "toy_benchmark.md")
    with h5py.File(out / "synthetic_beps.h5", "r") as f:
        found = find_results(f)
    # one group of each kind: the demo runs the whole chain from the raw response
    assert {k: len(v) for k, v in found.items()} == {
        "projection": 1, "dictionary": 1, "beta_vae": 1, "loop_fit": 1}
