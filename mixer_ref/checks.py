"""Validation at the model boundary, shared by the Flax and PyTorch models.

The official code silently pads an image that the patch size does not divide; we raise
instead, with the expected and the given value in the message.
"""

from __future__ import annotations

from mixer_ref.configs import IN_CHANNELS, Config


def check_images(shape: tuple[int, ...], is_float: bool, dtype: str, config: Config,
                 layout: str) -> None:
    """Raises ``ValueError`` unless ``shape`` is a float image batch the model was built for.

    ``layout`` is ``"NHWC"`` (Flax) or ``"NCHW"`` (PyTorch).
    """
    if len(shape) != 4:
        raise ValueError(
            f"Expected a rank-4 {layout} image batch, got shape {tuple(shape)} (rank {len(shape)})."
        )
    if layout == "NHWC":
        _, h, w, c = shape
    else:
        _, c, h, w = shape
    if c != IN_CHANNELS:
        raise ValueError(
            f"Expected {IN_CHANNELS} channels in {layout} layout, got {c} "
            f"(input shape {tuple(shape)})."
        )
    if not is_float:
        raise ValueError(
            f"Expected a floating-point image batch, got dtype {dtype}; "
            "convert and scale pixels first, e.g. x / 127.5 - 1."
        )
    p, size = config.patch_size, config.image_size
    if h % p or w % p:
        raise ValueError(
            f"Image size {h}x{w} is not divisible by the patch size {p}: expected multiples "
            f"of {p}, got {h}x{w}."
        )
    if (h, w) != (size, size):
        raise ValueError(
            f"This model's token-mixing layers were built for {size}x{size} images "
            f"({config.num_tokens} tokens); got {h}x{w}. Resize the images, or use "
            "mixer_ref.expand_token_mixing(model, new_image_size) to fine-tune at a higher "
            "resolution."
        )
