"""Building blocks shared by MLP-Mixer and ResMLP (PyTorch)."""

from __future__ import annotations

import math

import torch
from torch import nn

from mixer_ref.checks import check_images
from mixer_ref.configs import IN_CHANNELS, Config


class PatchEmbed(nn.Module):
    """The stem: one linear map per P×P patch, written as a P×P convolution with stride P.

    Returns the S = HW/P² tokens in row-major (h, w) order, shape (B, S, C).
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        p = config.patch_size
        self.proj = nn.Conv2d(IN_CHANNELS, config.hidden_dim, p, stride=p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(tuple(images.shape), images.is_floating_point(), str(images.dtype),
                     self.config, "NCHW")
        return self.proj(images).flatten(2).transpose(1, 2)


class MlpBlock(nn.Module):
    """Dense → GELU → Dense, acting on the last axis (Tolstikhin et al., Eq. (1))."""

    def __init__(self, dim: int, hidden_dim: int, *, approximate_gelu: bool, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.approximate_gelu = "tanh" if approximate_gelu else "none"
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.fc1(x), approximate=self.approximate_gelu)
        return self.dropout(self.fc2(self.dropout(x)))


class Affine(nn.Module):
    """Aff(x) = α ⊙ x + β, per channel (Touvron et al., Eq. (1)); ResMLP's LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample, rescaling by 1/(1 − p)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flax's ``lecun_normal``: truncated normal at ±2σ, variance 1/fan_in after truncation."""
    fan_in = tensor[0].numel()  # (out, in, ...) for Linear and Conv2d weights
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std, generator=generator)
