"""Analytic FLOPs of MLP-Mixer and ResMLP, counted from the config.

We count the matrix multiplications only (2 FLOPs per multiply-add), as is usual for
model FLOPs utilisation (MFU): normalisation, GELU, biases and residuals add well under 1%.
"""

from __future__ import annotations

from mixer_ref.configs import IN_CHANNELS, Config


def macs_per_image(config: Config) -> dict[str, int]:
    """Multiply-adds of one forward pass, by part: stem, token mixing, channel mixing, head.

    Mixer (Eq. (1)): token mixing costs 2·S·D_S·C per block and channel mixing 2·S·C·D_C,
    both linear in the number of tokens S. ResMLP's linear token layer costs S²·C.
    """
    s, c, n = config.num_tokens, config.hidden_dim, config.num_blocks
    stem = s * config.patch_size**2 * IN_CHANNELS * c
    if config.family == "mixer":
        tokens = 2 * s * config.tokens_mlp_dim * c
        channels = 2 * s * c * config.channels_mlp_dim
    else:
        tokens = s * s * c
        channels = 2 * s * c * config.mlp_ratio * c
    return {"stem": stem, "token_mixing": n * tokens, "channel_mixing": n * channels,
            "head": c * config.num_classes}


def flops_per_image(config: Config, train: bool = False) -> int:
    """Forward FLOPs per image; a training step costs about 3× (forward, then two matmuls
    per matmul in the backward pass)."""
    forward = 2 * sum(macs_per_image(config).values())
    return 3 * forward if train else forward
