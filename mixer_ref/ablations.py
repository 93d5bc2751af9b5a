"""ResMLP with the ablations of Touvron et al. (2021)'s ablation table, in Flax NNX.

:class:`AblatedResMLP` is :class:`mixer_ref.flax.ResMLP` (Eq. (1)) with two choices made
explicit:

``norm``, the pre-normalisation of each branch and before the head:
    ``"affine"`` Aff(x) = α ⊙ x + β (the paper's choice), ``"layernorm"`` (as in ViT, ε = 1e-6)
    or ``"none"`` (the identity). LayerScale, the post-normalisation γ, always stays.
``patch_mixing``, the layer that lets patches communicate:
    ``"linear"`` A (S×S, the paper's choice); ``"mlp"``, a 2-layer MLP across patches,
    S → ``mlp_ratio``·S → S with GELU (Mixer's token-mixing MLP); or ``"conv"``, a 3×3
    depthwise convolution over the patch grid (one 3×3 filter per channel, zero padding).

With ``norm="affine", patch_mixing="linear"`` it builds exactly ``mixer_ref.flax.ResMLP``:
the same parameters, in the same order, from the same seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from mixer_ref.configs import ResMLPConfig, get_config
from mixer_ref.flax.layers import Affine, MlpBlock, PatchEmbed, drop_path
from mixer_ref.flax.resmlp import _torch_default_uniform, linear_init

NORMS = ("affine", "layernorm", "none")
PATCH_MIXING = ("linear", "mlp", "conv")


class Identity(nnx.Module):
    """No normalisation."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


def make_norm(kind: str, dim: int, *, dtype=None, rngs: nnx.Rngs) -> nnx.Module:
    """The pre-normalisation ``kind`` (one of :data:`NORMS`) over ``dim`` channels."""
    if kind == "affine":
        return Affine(dim, dtype=dtype)
    if kind == "layernorm":
        return nnx.LayerNorm(dim, epsilon=1e-6, dtype=dtype, rngs=rngs)
    if kind == "none":
        return Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}.")


class AblatedResMLPBlock(nnx.Module):
    """Eq. (1) with ``norm`` in place of Aff and ``patch_mixing`` in place of A.

    Z = X + diag(γ1) patch_mixing(norm1(X)); Y = Z + diag(γ2) C GELU(B norm2(Z)).
    """

    def __init__(self, config: ResMLPConfig, drop_path_rate: float = 0.0, *,
                 norm: str = "affine", patch_mixing: str = "linear", dtype=None,
                 rngs: nnx.Rngs):
        if patch_mixing not in PATCH_MIXING:
            raise ValueError(f"patch_mixing must be one of {PATCH_MIXING}, "
                             f"got {patch_mixing!r}.")
        c, s = config.hidden_dim, config.num_tokens
        self.patch_mixing, self.grid, self.dtype = patch_mixing, math.isqrt(s), dtype
        self.norm1 = make_norm(norm, c, dtype=dtype, rngs=rngs)
        if patch_mixing == "linear":
            self.linear_tokens = nnx.Linear(s, s, kernel_init=linear_init, dtype=dtype,
                                            rngs=rngs)
        elif patch_mixing == "mlp":
            self.mlp_tokens = MlpBlock(s, config.mlp_ratio * s, approximate_gelu=False,
                                       dropout=config.dropout, kernel_init=linear_init,
                                       dtype=dtype, rngs=rngs)
        else:
            self.conv_tokens = nnx.Conv(c, c, (3, 3), padding="SAME", feature_group_count=c,
                                        kernel_init=linear_init, dtype=dtype, rngs=rngs)
        self.gamma_1 = nnx.Param(jnp.full((c,), config.layerscale_init))
        self.norm2 = make_norm(norm, c, dtype=dtype, rngs=rngs)
        self.mlp = MlpBlock(c, config.mlp_ratio * c, approximate_gelu=False,
                            dropout=config.dropout, kernel_init=linear_init, dtype=dtype,
                            rngs=rngs)
        self.gamma_2 = nnx.Param(jnp.full((c,), config.layerscale_init))
        self.drop_path = drop_path(drop_path_rate, rngs=rngs)

    def mix_patches(self, x: jax.Array) -> jax.Array:
        """The patch-communication layer on tokens (B, S, C), row-major over the grid."""
        if self.patch_mixing == "conv":
            b, s, c = x.shape
            grid = x.reshape(b, self.grid, self.grid, c)
            return self.conv_tokens(grid).reshape(b, s, c)
        layer = self.linear_tokens if self.patch_mixing == "linear" else self.mlp_tokens
        return jnp.swapaxes(layer(jnp.swapaxes(x, 1, 2)), 1, 2)

    def __call__(self, x: jax.Array) -> jax.Array:
        gamma_1, gamma_2 = self.gamma_1[...], self.gamma_2[...]
        if self.dtype is not None:
            gamma_1, gamma_2 = gamma_1.astype(self.dtype), gamma_2.astype(self.dtype)
        x = x + self.drop_path(gamma_1 * self.mix_patches(self.norm1(x)))
        return x + self.drop_path(gamma_2 * self.mlp(self.norm2(x)))


class AblatedResMLP(nnx.Module):
    """Stem → N :class:`AblatedResMLPBlock` → ``norm`` → mean over patches → linear head."""

    def __init__(self, config: ResMLPConfig, *, norm: str = "affine",
                 patch_mixing: str = "linear", dtype=None, rngs: nnx.Rngs):
        if math.isqrt(config.num_tokens) ** 2 != config.num_tokens:
            raise ValueError(f"expected a square patch grid, got {config.num_tokens} tokens.")
        self.config, self.norm_kind, self.patch_mixing = config, norm, patch_mixing
        fan_in = config.patch_size**2 * 3
        stem_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
        self.stem = PatchEmbed(config, kernel_init=stem_init,
                               bias_init=lambda k, s, d=jnp.float32: _torch_default_uniform(
                                   k, s, d, fan_in),
                               dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([
            AblatedResMLPBlock(config, rate, norm=norm, patch_mixing=patch_mixing,
                               dtype=dtype, rngs=rngs)
            for rate in config.drop_path_rates()])
        self.norm = make_norm(norm, config.hidden_dim, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(config.hidden_dim, config.num_classes, kernel_init=linear_init,
                               dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        """Maps NHWC images (B, H, W, 3) to logits (B, num_classes)."""
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(axis=1))


def patch_mixing_macs(patch_mixing: str, num_tokens: int, dim: int, mlp_ratio: int = 4) -> int:
    """Multiply-adds of one patch-communication layer on S tokens of C channels:
    S²C (linear), 2·r·S²C (MLP with hidden r·S), 9·S·C (3×3 depthwise conv)."""
    s, c = num_tokens, dim
    macs = {"linear": s * s * c, "mlp": 2 * mlp_ratio * s * s * c, "conv": 9 * s * c}
    if patch_mixing not in macs:
        raise ValueError(f"patch_mixing must be one of {PATCH_MIXING}, got {patch_mixing!r}.")
    return macs[patch_mixing]


def variant(name: str = "resmlp_tiny", *, norm: str = "affine", patch_mixing: str = "linear",
            **overrides) -> Callable[..., AblatedResMLP]:
    """A constructor ``make(num_classes, dtype=, rngs=)`` of the registry ResMLP ``name``
    (with config ``overrides``, e.g. ``image_size=28``) ablated as given, for
    :func:`mixer_ref.experiments.fit_module`."""
    return functools.partial(_build, name, norm, patch_mixing, overrides)


def _build(name, norm, patch_mixing, overrides, num_classes, *, dtype=None, rngs):
    config = get_config(name, num_classes=num_classes, **overrides)
    if config.family != "resmlp":
        raise ValueError(f"expected a ResMLP config, got {name!r} ({config.family}).")
    return AblatedResMLP(config, norm=norm, patch_mixing=patch_mixing, dtype=dtype, rngs=rngs)


def num_params(module: nnx.Module) -> int:
    """The number of trainable parameters of any Flax module."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
