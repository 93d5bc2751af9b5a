"""MLP-Mixer and ResMLP as Flax NNX modules. Inputs are NHWC float arrays."""

from mixer_ref.flax.layers import Affine, MlpBlock, PatchEmbed
from mixer_ref.flax.mixer import MixerBlock, MlpMixer
from mixer_ref.flax.resmlp import ResMLP, ResMLPBlock

__all__ = ["Affine", "MlpBlock", "PatchEmbed", "MixerBlock", "MlpMixer", "ResMLP", "ResMLPBlock"]
