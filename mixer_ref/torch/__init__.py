"""MLP-Mixer and ResMLP as PyTorch modules. Inputs are NCHW float tensors."""

from mixer_ref.torch.layers import Affine, MlpBlock, PatchEmbed
from mixer_ref.torch.mixer import MixerBlock, MlpMixer
from mixer_ref.torch.resmlp import ResMLP, ResMLPBlock

__all__ = ["Affine", "MlpBlock", "PatchEmbed", "MixerBlock", "MlpMixer", "ResMLP", "ResMLPBlock"]
