"""MLP-Mixer (Tolstikhin et al., 2021), matching google-research/vision_transformer."""

from __future__ import annotations

import torch
from torch import nn

from mixer_ref.configs import MixerConfig
from mixer_ref.torch.layers import DropPath, MlpBlock, PatchEmbed, lecun_normal_


class MixerBlock(nn.Module):
    """One Mixer layer, Eq. (1) of the paper.

    U = X + W2 σ(W1 LayerNorm(X)) on every channel column (token mixing), then
    Y = U + W4 σ(W3 LayerNorm(U)) on every token row (channel mixing).
    """

    def __init__(self, config: MixerConfig, drop_path_rate: float = 0.0):
        super().__init__()
        c, s = config.hidden_dim, config.num_tokens
        mlp = dict(approximate_gelu=True, dropout=config.dropout)
        self.norm1 = nn.LayerNorm(c, eps=1e-6)
        self.token_mixing = MlpBlock(s, config.tokens_mlp_dim, **mlp)
        self.norm2 = nn.LayerNorm(c, eps=1e-6)
        self.channel_mixing = MlpBlock(c, config.channels_mlp_dim, **mlp)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.token_mixing(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.channel_mixing(self.norm2(x)))


class MlpMixer(nn.Module):
    """Stem → N Mixer blocks → pre-head LayerNorm → mean over tokens → linear head."""

    def __init__(self, config: MixerConfig, *, seed: int = 0):
        super().__init__()
        self.config = config
        self.stem = PatchEmbed(config)
        self.blocks = nn.ModuleList([MixerBlock(config, rate)
                                     for rate in config.drop_path_rates()])
        self.pre_head_layer_norm = nn.LayerNorm(config.hidden_dim, eps=1e-6)
        self.head = nn.Linear(config.hidden_dim, config.num_classes)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """The official initialisation: lecun-normal kernels, zero biases, zero head."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                lecun_normal_(module.weight, generator)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Maps NCHW images (B, 3, H, W) to logits (B, num_classes)."""
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.pre_head_layer_norm(x).mean(dim=1))
