"""ResMLP (Touvron et al., 2021), matching facebookresearch/deit ``resmlp_models.py``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mixer_ref.configs import ResMLPConfig
from mixer_ref.flax.layers import Affine, MlpBlock, PatchEmbed, drop_path

# deit's ``_init_weights``: Linear kernels ~ timm's trunc_normal_(std=0.02), zero biases.
# timm truncates at ±2 in absolute value, i.e. ±100σ: in effect an untruncated normal.
linear_init = nnx.initializers.truncated_normal(stddev=0.02, lower=-100.0, upper=100.0)


def _torch_default_uniform(key, shape, dtype=jnp.float32, fan_in=1):
    bound = 1.0 / fan_in**0.5
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class ResMLPBlock(nnx.Module):
    """One ResMLP layer, Eq. (1) of the paper.

    Z = X + diag(γ1) Aff(A Aff(X)ᵀ)ᵀ: a linear layer A (S×S) across patches, no activation.
    Y = Z + diag(γ2) C GELU(B Aff(Z)): the channel MLP. The γ's are LayerScale.
    """

    def __init__(self, config: ResMLPConfig, drop_path_rate: float = 0.0, *, dtype=None,
                 rngs: nnx.Rngs):
        c, s = config.hidden_dim, config.num_tokens
        self.dtype = dtype
        self.norm1 = Affine(c, dtype=dtype)
        self.linear_tokens = nnx.Linear(s, s, kernel_init=linear_init, dtype=dtype, rngs=rngs)
        self.gamma_1 = nnx.Param(jnp.full((c,), config.layerscale_init))
        self.norm2 = Affine(c, dtype=dtype)
        self.mlp = MlpBlock(c, config.mlp_ratio * c, approximate_gelu=False,
                            dropout=config.dropout, kernel_init=linear_init, dtype=dtype,
                            rngs=rngs)
        self.gamma_2 = nnx.Param(jnp.full((c,), config.layerscale_init))
        self.drop_path = drop_path(drop_path_rate, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        gamma_1, gamma_2 = self.gamma_1[...], self.gamma_2[...]
        if self.dtype is not None:
            gamma_1, gamma_2 = gamma_1.astype(self.dtype), gamma_2.astype(self.dtype)
        y = jnp.swapaxes(self.linear_tokens(jnp.swapaxes(self.norm1(x), 1, 2)), 1, 2)
        x = x + self.drop_path(gamma_1 * y)
        return x + self.drop_path(gamma_2 * self.mlp(self.norm2(x)))


class ResMLP(nnx.Module):
    """Stem → N ResMLP blocks → Affine → mean over patches → linear head."""

    def __init__(self, config: ResMLPConfig, *, dtype=None, rngs: nnx.Rngs):
        self.config = config
        fan_in = config.patch_size**2 * 3
        stem_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
        self.stem = PatchEmbed(config, kernel_init=stem_init,
                               bias_init=lambda k, s, d=jnp.float32: _torch_default_uniform(
                                   k, s, d, fan_in),
                               dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([ResMLPBlock(config, rate, dtype=dtype, rngs=rngs)
                                for rate in config.drop_path_rates()])
        self.norm = Affine(config.hidden_dim, dtype=dtype)
        self.head = nnx.Linear(config.hidden_dim, config.num_classes, kernel_init=linear_init,
                               dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        """Maps NHWC images (B, H, W, 3) to logits (B, num_classes)."""
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(axis=1))
