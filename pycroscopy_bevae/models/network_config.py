"""Sizes of the beta-VAE network and the number of weights they make (no TensorFlow).

:mod:`~pycroscopy_bevae.models.vae_network` builds the network from a
:class:`NetworkConfig`; this module only describes it, so that storage can be sized and
stored models checked without importing TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["NetworkConfig"]


@dataclass
class NetworkConfig:
    """Sizes of the network. Plain values only (stored as JSON with the weights).

    Examples
    --------
    >>> NetworkConfig(n_steps=8, units=2, n_blocks=0, embedding_dim=2, latent_dim=1).weight_count()
    186
    """

    n_steps: int
    n_channels: int = 1
    units: int = 128
    n_blocks: int = 3
    layers_per_block: int = 2
    embedding_dim: int = 16
    latent_dim: int = 16
    layer_norm_axis: str = "time"  # "time" (reference code) or "features"
    kl_reduction: str = "mean"  # "mean" (reference code) or "sum" (per sample)
    linear_path: bool = False  # add a linear map input -> mean and z -> output

    @classmethod
    def from_settings(cls, s, n_steps: int, n_channels: int) -> NetworkConfig:
        """The network of a BetaVAE's settings ``s`` for spectra of (n_steps, n_channels)."""
        return cls(n_steps=n_steps, n_channels=n_channels, units=s.units, n_blocks=s.n_blocks,
                   layers_per_block=s.layers_per_block, embedding_dim=s.embedding_dim,
                   latent_dim=s.latent_dim, layer_norm_axis=s.layer_norm_axis,
                   kl_reduction=s.kl_reduction, linear_path=s.linear_path)

    def to_dict(self) -> dict:
        """Plain-dict form."""
        return asdict(self)

    def weight_count(self) -> int:
        """Number of weights of the network built from this config, incl. normalisation
        statistics and the channel mask (an upper bound)."""
        u, e, lat, steps, chans = (self.units, self.embedding_dim, self.latent_dim,
                                   self.n_steps, self.n_channels)

        def bilstm(d_in: int) -> int:
            return 2 * 4 * u * (d_in + u + 1)

        norm = 2 * (steps if self.layer_norm_axis == "time" else 2 * u)  # gamma, beta

        def blocks(d_in: int) -> int:
            total, d = 0, d_in
            for _ in range(self.n_blocks):
                for _ in range(self.layers_per_block):
                    total += bilstm(d)
                    d = 2 * u
                # a skip projection where the widths differ, then the layer norm
                total += ((d_in + 1) * 2 * u if d_in != 2 * u else 0) + norm
                d_in = d
            return total

        enc = blocks(chans) + bilstm(2 * u if self.n_blocks else chans) + 4 * 2 * u \
            + (2 * u + 1) * e + 2 * (e + 1) * lat + lat  # ... + the channel mask
        dec = (lat + 1) * e + bilstm(e) + blocks(2 * u) + (2 * u + 1) * chans
        if self.linear_path:
            enc += steps * chans * lat
            dec += (lat + 1) * steps * chans
        return int(enc + dec)
