"""MLP-Mixer (Tolstikhin et al., 2021), matching google-research/vision_transformer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mixer_ref.configs import MixerConfig
from mixer_ref.flax.layers import MlpBlock, PatchEmbed, drop_path


class MixerBlock(nnx.Module):
    """One Mixer layer, Eq. (1) of the paper.

    U = X + W2 σ(W1 LayerNorm(X)) on every channel column (token mixing), then
    Y = U + W4 σ(W3 LayerNorm(U)) on every token row (channel mixing).
    """

    def __init__(self, config: MixerConfig, drop_path_rate: float = 0.0, *, dtype=None,
                 rngs: nnx.Rngs):
        c, s = config.hidden_dim, config.num_tokens
        mlp = dict(approximate_gelu=True, dropout=config.dropout, dtype=dtype, rngs=rngs)
        self.norm1 = nnx.LayerNorm(c, epsilon=1e-6, dtype=dtype, rngs=rngs)
        self.token_mixing = MlpBlock(s, config.tokens_mlp_dim, **mlp)
        self.norm2 = nnx.LayerNorm(c, epsilon=1e-6, dtype=dtype, rngs=rngs)
        self.channel_mixing = MlpBlock(c, config.channels_mlp_dim, **mlp)
        self.drop_path = drop_path(drop_path_rate, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.swapaxes(self.token_mixing(jnp.swapaxes(self.norm1(x), 1, 2)), 1, 2)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.channel_mixing(self.norm2(x)))


class MlpMixer(nnx.Module):
    """Stem → N Mixer blocks → pre-head LayerNorm → mean over tokens → linear head."""

    def __init__(self, config: MixerConfig, *, dtype=None, rngs: nnx.Rngs):
        self.config = config
        self.stem = PatchEmbed(config, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([MixerBlock(config, rate, dtype=dtype, rngs=rngs)
                                for rate in config.drop_path_rates()])
        self.pre_head_layer_norm = nnx.LayerNorm(config.hidden_dim, epsilon=1e-6,
                                                 dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(config.hidden_dim, config.num_classes,
                               kernel_init=nnx.initializers.zeros_init(), dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        """Maps NHWC images (B, H, W, 3) to logits (B, num_classes)."""
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        x = self.pre_head_layer_norm(x)
        return self.head(x.mean(axis=1))
