"""ResMLP (Touvron et al., 2021), matching facebookresearch/deit ``resmlp_models.py``."""

from __future__ import annotations

import math

import torch
from torch import nn

from mixer_ref.configs import ResMLPConfig
from mixer_ref.torch.layers import Affine, DropPath, MlpBlock, PatchEmbed


class ResMLPBlock(nn.Module):
    """One ResMLP layer, Eq. (1) of the paper.

    Z = X + diag(γ1) Aff(A Aff(X)ᵀ)ᵀ: a linear layer A (S×S) across patches, no activation.
    Y = Z + diag(γ2) C GELU(B Aff(Z)): the channel MLP. The γ's are LayerScale.
    """

    def __init__(self, config: ResMLPConfig, drop_path_rate: float = 0.0):
        super().__init__()
        c, s = config.hidden_dim, config.num_tokens
        self.norm1 = Affine(c)
        self.linear_tokens = nn.Linear(s, s)
        self.gamma_1 = nn.Parameter(torch.full((c,), config.layerscale_init))
        self.norm2 = Affine(c)
        self.mlp = MlpBlock(c, config.mlp_ratio * c, approximate_gelu=False,
                            dropout=config.dropout)
        self.gamma_2 = nn.Parameter(torch.full((c,), config.layerscale_init))
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.drop_path(self.gamma_1 * y)
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class ResMLP(nn.Module):
    """Stem → N ResMLP blocks → Affine → mean over patches → linear head."""

    def __init__(self, config: ResMLPConfig, *, seed: int = 0):
        super().__init__()
        self.config = config
        self.stem = PatchEmbed(config)
        self.blocks = nn.ModuleList([ResMLPBlock(config, rate)
                                     for rate in config.drop_path_rates()])
        self.norm = Affine(config.hidden_dim)
        self.head = nn.Linear(config.hidden_dim, config.num_classes)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """deit's initialisation: Linear ~ timm's trunc_normal_(std=0.02), which truncates at
        ±2 in absolute value (in effect a plain normal), zero biases; the stem keeps
        PyTorch's default uniform(±1/√fan_in)."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0,
                                      generator=generator)
                nn.init.zeros_(module.bias)
        proj = self.stem.proj
        bound = 1.0 / math.sqrt(proj.weight[0].numel())
        nn.init.uniform_(proj.weight, -bound, bound, generator=generator)
        nn.init.uniform_(proj.bias, -bound, bound, generator=generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Maps NCHW images (B, 3, H, W) to logits (B, num_classes)."""
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))
