"""A small convolutional baseline for the data-scale comparison (Flax NNX).

The Mixer paper measures its models against BiT ResNets (Kolesnikov et al., 2020): ResNet v2
(pre-activation) with GroupNorm in place of BatchNorm, so that nothing depends on the batch.
:class:`ResNetTiny` is that design at course size, without BiT's weight standardisation:

    stem 3×3 conv with stride ``stem_stride`` → one residual block per stage (the first
    stage at the stem's resolution, each later one halving it) → GroupNorm → ReLU → mean
    over positions → linear head.

BiT's root block shrinks the image 4× before the first stage (a 7×7 conv with stride 2, then
a 3×3 max-pool with stride 2). At 28 or 32 pixels the course keeps more resolution: the
stem has stride 1 by default, and ``stem_stride=2`` starts the first stage at half the
resolution, which divides the FLOPs by about four and leaves the parameters unchanged.

Like the Mixer, it maps float NHWC images to logits, starts from a zero head, and trains
with ``mixer_ref.train.make_train_step`` and ``evaluate`` unchanged.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mixer_ref.configs import IN_CHANNELS

NUM_GROUPS = 8  # GroupNorm groups; every stage width must be a multiple of it


def he_normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """He et al. (2015) initialisation for ReLU networks: N(0, 2 / fan_in), fan_in being
    every axis but the last. Drawn as a flat vector and reshaped: the same distribution,
    but XLA on a CPU compiles a 1-D draw many times faster than a 4-D one."""
    fan_in = math.prod(shape[:-1])
    flat = jax.random.normal(key, (math.prod(shape),), dtype)
    return (flat * math.sqrt(2.0 / fan_in)).reshape(shape)


class ResidualBlock(nnx.Module):
    """Pre-activation residual block: x + conv(ReLU(GN(conv(ReLU(GN(x)))))).

    The first 3×3 conv has stride ``stride``; when the shape changes, the shortcut is a
    strided 1×1 conv of the pre-activated input, as in ResNet v2.
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int, *, dtype=None, rngs: nnx.Rngs):
        conv = dict(use_bias=False, kernel_init=he_normal, dtype=dtype, rngs=rngs)
        self.norm1 = nnx.GroupNorm(in_dim, NUM_GROUPS, dtype=dtype, rngs=rngs)
        self.conv1 = nnx.Conv(in_dim, out_dim, (3, 3), strides=stride, **conv)
        self.norm2 = nnx.GroupNorm(out_dim, NUM_GROUPS, dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(out_dim, out_dim, (3, 3), **conv)
        self.shortcut = (nnx.Conv(in_dim, out_dim, (1, 1), strides=stride, **conv)
                         if stride != 1 or in_dim != out_dim else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.norm1(x))
        shortcut = x if self.shortcut is None else self.shortcut(y)
        y = self.conv1(y)
        return shortcut + self.conv2(nnx.relu(self.norm2(y)))


class ResNetTiny(nnx.Module):
    """A ResNet v2 with one residual block per stage of width ``widths[i]``, after a 3×3
    stem of stride ``stem_stride``."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64), *,
                 stem_stride: int = 1, dtype=None, rngs: nnx.Rngs):
        bad = [w for w in widths if w % NUM_GROUPS]
        if not widths or bad:
            raise ValueError(f"widths must be multiples of {NUM_GROUPS} (GroupNorm groups), "
                             f"got {tuple(widths)}.")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}.")
        self.widths, self.stem_stride = tuple(widths), stem_stride
        self.stem = nnx.Conv(IN_CHANNELS, widths[0], (3, 3), strides=stem_stride,
                             use_bias=False, kernel_init=he_normal, dtype=dtype, rngs=rngs)
        dims = (widths[0], *widths)
        self.stages = nnx.List([
            ResidualBlock(dims[i], dims[i + 1], 1 if i == 0 else 2, dtype=dtype, rngs=rngs)
            for i in range(len(widths))])
        self.norm = nnx.GroupNorm(widths[-1], NUM_GROUPS, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(widths[-1], num_classes,
                               kernel_init=nnx.initializers.zeros_init(), dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        """Maps NHWC images (B, H, W, 3) to logits (B, num_classes)."""
        if images.ndim != 4 or images.shape[-1] != IN_CHANNELS:
            raise ValueError(f"Expected NHWC images of shape (B, H, W, {IN_CHANNELS}), got "
                             f"{tuple(images.shape)}.")
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise ValueError(f"Expected a floating-point image batch, got dtype {images.dtype}; "
                             "convert and scale pixels first.")
        x = self.stem(images)
        for stage in self.stages:
            x = stage(x)
        x = nnx.relu(self.norm(x))
        return self.head(x.mean(axis=(1, 2)))
