"""Building blocks shared by MLP-Mixer and ResMLP (Flax NNX)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from mixer_ref.checks import check_images
from mixer_ref.configs import IN_CHANNELS, Config


class PatchEmbed(nnx.Module):
    """The stem: one linear map per P×P patch, written as a P×P convolution with stride P.

    Returns the S = HW/P² tokens in row-major (h, w) order, shape (B, S, C).
    """

    def __init__(self, config: Config, *, kernel_init=nnx.initializers.lecun_normal(),
                 bias_init=nnx.initializers.zeros_init(), dtype=None, rngs: nnx.Rngs):
        self.config = config
        p = config.patch_size
        self.proj = nnx.Conv(IN_CHANNELS, config.hidden_dim, (p, p), strides=(p, p),
                             padding="VALID", kernel_init=kernel_init, bias_init=bias_init,
                             dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        check_images(images.shape, jnp.issubdtype(images.dtype, jnp.floating),
                     str(images.dtype), self.config, "NHWC")
        x = self.proj(images)
        b, h, w, c = x.shape
        return x.reshape(b, h * w, c)  # explicit sizes: an empty batch has no -1 to infer


class MlpBlock(nnx.Module):
    """Dense → GELU → Dense, acting on the last axis (Tolstikhin et al., Eq. (1))."""

    def __init__(self, dim: int, hidden_dim: int, *, approximate_gelu: bool, dropout: float,
                 kernel_init=nnx.initializers.lecun_normal(), dtype=None, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(dim, hidden_dim, kernel_init=kernel_init, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden_dim, dim, kernel_init=kernel_init, dtype=dtype, rngs=rngs)
        self.approximate_gelu = approximate_gelu
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.gelu(self.fc1(x), approximate=self.approximate_gelu)
        return self.dropout(self.fc2(self.dropout(x)))


class Affine(nnx.Module):
    """Aff(x) = α ⊙ x + β, per channel (Touvron et al., Eq. (1)); ResMLP's LayerNorm."""

    def __init__(self, dim: int, *, dtype=None):
        self.alpha = nnx.Param(jnp.ones((dim,)))
        self.beta = nnx.Param(jnp.zeros((dim,)))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        alpha, beta = self.alpha[...], self.beta[...]
        if self.dtype is not None:
            alpha, beta = alpha.astype(self.dtype), beta.astype(self.dtype)
        return alpha * x + beta


def drop_path(rate: float, *, rngs: nnx.Rngs) -> nnx.Dropout:
    """Stochastic depth: drops a whole residual branch per sample, rescaling by 1/(1 − p)."""
    return nnx.Dropout(rate, broadcast_dims=(1, 2), rngs=rngs)


Initializer = Callable[..., jax.Array]
