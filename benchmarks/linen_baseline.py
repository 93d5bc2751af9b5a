"""The benchmark's baseline: MLP-Mixer in Flax Linen, in the official code's formulation.

Written from the paper (Tolstikhin et al., 2021, Sec. 2) in the layout of
google-research/vision_transformer ``vit_jax/models_mixer.py``: token mixing swaps the
token and channel axes, applies a Dense over tokens and swaps back; GELU is ``nn.gelu``
(tanh); LayerNorm has ε = 1e-6; the stem is a P×P convolution with stride P; the head
averages over tokens and has a zero-initialised kernel.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mixer_ref.configs import MixerConfig


class MlpBlock(nn.Module):
    mlp_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.gelu(nn.Dense(self.mlp_dim)(x))
        return nn.Dense(x.shape[-1])(y)


class MixerBlock(nn.Module):
    tokens_mlp_dim: int
    channels_mlp_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.swapaxes(nn.LayerNorm()(x), 1, 2)
        y = MlpBlock(self.tokens_mlp_dim, name="token_mixing")(y)
        x = x + jnp.swapaxes(y, 1, 2)
        y = nn.LayerNorm()(x)
        return x + MlpBlock(self.channels_mlp_dim, name="channel_mixing")(y)


class MlpMixer(nn.Module):
    config: MixerConfig

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        c, p = self.config, self.config.patch_size
        x = nn.Conv(c.hidden_dim, (p, p), strides=(p, p), name="stem")(images)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        for _ in range(c.num_blocks):
            x = MixerBlock(c.tokens_mlp_dim, c.channels_mlp_dim)(x)
        x = nn.LayerNorm(name="pre_head_layer_norm")(x)
        return nn.Dense(c.num_classes, kernel_init=nn.initializers.zeros, name="head")(
            x.mean(axis=1))
