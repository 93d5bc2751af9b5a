"""Model surgery: fine-tuning at a higher resolution (Tolstikhin et al., 2021, Supp. C).

A Mixer's token-mixing weights have S = HW/P² rows, so a larger image needs new weights.
With an image K times larger per side (K an integer), S' = K²S and D_S' = K²D_S. The new
token grid is cut into K×K spatial tiles of the original S tokens each, and W1' (S'×D_S')
and W2' (D_S'×S') start block-diagonal, with one copy of W1 and W2 per tile. ResMLP's S×S
``linear_tokens`` layer A is expanded the same way.

Why the expanded model on an image made of K×K original-size tiles returns the mean of the
original model's logits on the tiles, exactly up to float rounding:

1. The stem is per patch, so tile (a, b) of the image gives exactly the tokens at grid
   positions (h, w) with (h // (H/P), w // (W/P)) == (a, b), in the tile's own row-major
   order: the original model's tokens for that tile.
2. Token mixing with a block-diagonal W1', W2' (or A') mixes only tokens of the same tile,
   with the original weights, so each tile's tokens evolve as in the original model.
3. Everything else (LayerNorm or Affine, channel mixing, residuals) acts on one token at a
   time, so it cannot mix tiles either.
4. The head averages over K²S tokens, which equals the mean over tiles of the per-tile means
   of S tokens; the linear head commutes with that mean.
"""

from __future__ import annotations

import dataclasses
from functools import reduce

import numpy as np

from mixer_ref.configs import Config
from mixer_ref.models import build, framework_of


def expand_token_mixing(model, new_image_size: int):
    """Returns a new model for ``new_image_size`` images, with block-diagonal token mixing.

    ``model`` is a Flax NNX or PyTorch ``MlpMixer`` or ``ResMLP``; it is not modified.
    ``new_image_size`` must be K × ``model.config.image_size`` for an integer K ≥ 1. For a
    Mixer the new config has ``tokens_mlp_dim`` K²·D_S. All other parameters are copied.
    The new model is freshly built, so it is in training mode.
    """
    config = model.config
    k = _scale_factor(config, new_image_size)
    new_config = dataclasses.replace(config, image_size=new_image_size)
    tokens = tile_tokens(config.image_size // config.patch_size, k)
    if config.family == "mixer":
        d_s = config.tokens_mlp_dim
        new_config = dataclasses.replace(new_config, tokens_mlp_dim=k * k * d_s)
        hidden = np.arange(k * k * d_s).reshape(k * k, d_s)
        layers = {"token_mixing.fc1": (tokens, hidden), "token_mixing.fc2": (hidden, tokens)}
    else:
        layers = {"linear_tokens": (tokens, tokens)}
    if framework_of(model) == "flax":
        return _expand_flax(model, new_config, layers)
    return _expand_torch(model, new_config, layers)


def tile_tokens(grid: int, k: int) -> np.ndarray:
    """Token indices of each tile on a (k·grid)×(k·grid) token grid, shape (k², grid²).

    Row a·k + b lists the row-major indices of the tokens of tile (a, b), in the tile's own
    row-major order: entry i·grid + j is the token at (a·grid + i, b·grid + j).
    """
    index = np.arange((k * grid) ** 2).reshape(k, grid, k, grid)  # (a, i, b, j)
    return index.transpose(0, 2, 1, 3).reshape(k * k, grid * grid)


def block_diagonal(kernel: np.ndarray, bias: np.ndarray, rows: np.ndarray,
                   cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An (in, out) kernel with a copy of ``kernel`` at ``rows[t] × cols[t]`` for each tile t,
    zero elsewhere, and the bias with a copy of ``bias`` at ``cols[t]``."""
    new_kernel = np.zeros((rows.size, cols.size), kernel.dtype)
    new_bias = np.zeros(cols.size, bias.dtype)
    for r, c in zip(rows, cols, strict=True):
        new_kernel[np.ix_(r, c)] = kernel
        new_bias[c] = bias
    return new_kernel, new_bias


def _scale_factor(config: Config, new_image_size: int) -> int:
    k, rem = divmod(new_image_size, config.image_size)
    if k < 1 or rem:
        raise ValueError(
            f"new_image_size must be an integer multiple K >= 1 of the model's image_size "
            f"{config.image_size} (expected {config.image_size}, {2 * config.image_size}, "
            f"{3 * config.image_size}, ...), got {new_image_size}."
        )
    return k


def _expand_flax(model, config: Config, layers):
    import jax.numpy as jnp
    from flax import nnx

    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for block in params["blocks"].values():
        for name, (rows, cols) in layers.items():
            layer = reduce(dict.__getitem__, name.split("."), block)
            kernel, bias = block_diagonal(np.asarray(layer["kernel"]), np.asarray(layer["bias"]),
                                          rows, cols)
            layer["kernel"], layer["bias"] = jnp.asarray(kernel), jnp.asarray(bias)
    new = build(config, "flax", dtype=model.stem.proj.dtype)
    state = nnx.state(new, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(new, state)
    return new


def _expand_torch(model, config: Config, layers):
    import torch

    state = model.state_dict()
    for i in range(config.num_blocks):
        for name, (rows, cols) in layers.items():
            key = f"blocks.{i}.{name}"
            weight, bias = (state[f"{key}.{p}"].detach().cpu() for p in ("weight", "bias"))
            kernel, bias = block_diagonal(weight.T.numpy(), bias.numpy(), rows, cols)
            state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.T))
            state[f"{key}.bias"] = torch.from_numpy(bias)
    new = build(config, "torch")
    new.load_state_dict(state)
    return new.to(next(model.parameters()).device)
