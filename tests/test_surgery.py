"""Specification of ``mixer_ref.surgery``: fine-tuning at a higher resolution (Mixer, Supp. C)."""

from functools import reduce

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from mixer_ref import expand_token_mixing, get_config
from mixer_ref.models import build

# 16×16 images in 4×4 patches: a 4×4 token grid, small enough for K = 3 to stay fast.
SMALL = dict(image_size=16, hidden_dim=32, num_classes=5)
CONFIGS = {
    "mixer": get_config("mixer_tiny", tokens_mlp_dim=24, channels_mlp_dim=64, **SMALL),
    "resmlp": get_config("resmlp_tiny", **SMALL),
}
TOKEN_LAYERS = {"mixer": ("token_mixing.fc1", "token_mixing.fc2"), "resmlp": ("linear_tokens",)}
FRAMEWORKS = ("flax", "torch")


def random_model(family: str, framework: str, seed: int = 0):
    """A model with every parameter perturbed: the zero-initialised Mixer head and zero biases
    would otherwise make the properties below hold trivially."""
    model = build(CONFIGS[family], framework, seed=seed)
    rng = np.random.default_rng(seed)
    if framework == "torch":
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.from_numpy(rng.normal(0, 0.2, p.shape).astype(np.float32)))
        return model.eval()
    state = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(
        lambda p: p + jnp.asarray(rng.normal(0, 0.2, p.shape), jnp.float32), state))
    return model


def logits(model, images: np.ndarray) -> np.ndarray:
    """Logits for NHWC float32 ``images``, in either framework."""
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            return model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    return np.asarray(model(jnp.asarray(images)))


def params(model) -> dict[str, np.ndarray]:
    if isinstance(model, torch.nn.Module):
        return {k: v.numpy().copy() for k, v in model.state_dict().items()}
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {"/".join(map(str, k)): np.array(v[...]) for k, v in flat}


def token_kernel(model, name: str, block: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (in, out) kernel and the bias of a token-mixing layer, in either framework."""
    layer = reduce(getattr, name.split("."), model.blocks[block])
    if isinstance(model, torch.nn.Module):
        return layer.weight.detach().numpy().T, layer.bias.detach().numpy()
    return np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])


def slow_expansion(kernel, bias, kinds, grid: int, k: int):
    """Supp. C spelled out one entry at a time: new index → (tile, index inside the tile).

    A token at (h, w) of the new grid lies in tile (h // grid, w // grid) at local row-major
    position (h % grid, w % grid); hidden unit u lies in tile u // D_S at position u % D_S.
    """

    def locate(kind, n):
        if kind == "token":
            side = k * grid
            return [((h // grid) * k + w // grid, (h % grid) * grid + w % grid)
                    for h in range(side) for w in range(side)]
        return [(u // n, u % n) for u in range(k * k * n)]

    rows, cols = locate(kinds[0], kernel.shape[0]), locate(kinds[1], kernel.shape[1])
    new_kernel = np.zeros((len(rows), len(cols)), np.float32)
    for p, (tile_p, i) in enumerate(rows):
        for q, (tile_q, j) in enumerate(cols):
            if tile_p == tile_q:
                new_kernel[p, q] = kernel[i, j]
    return new_kernel, np.array([bias[j] for _, j in cols])


LAYER_KINDS = {"token_mixing.fc1": ("token", "hidden"), "token_mixing.fc2": ("hidden", "token"),
               "linear_tokens": ("token", "token")}


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("family", ["mixer", "resmlp"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_expanded_model_returns_mean_of_tile_logits(framework, family, k):
    model = random_model(family, framework)
    size = model.config.image_size
    tiles = np.random.default_rng(1).normal(size=(k, k, 2, size, size, 3)).astype(np.float32)
    # image[:, a·size + i, b·size + j] = tiles[a, b, :, i, j]: the tiles all differ, so a wrong
    # tile layout mixes tokens of different tiles and changes the logits.
    images = tiles.transpose(2, 0, 3, 1, 4, 5).reshape(2, k * size, k * size, 3)
    expected = np.mean([logits(model, tiles[a, b]) for a in range(k) for b in range(k)], axis=0)

    big = expand_token_mixing(model, k * size)
    if framework == "torch":
        big.eval()

    assert np.abs(expected).max() > 0.1  # not vacuous
    np.testing.assert_allclose(logits(big, images), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["mixer", "resmlp"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_token_mixing_is_block_diagonal_in_tile_order(framework, family):
    model, k = random_model(family, framework), 2
    grid = model.config.image_size // model.config.patch_size
    big = expand_token_mixing(model, k * model.config.image_size)
    for block in range(model.config.num_blocks):
        for name in TOKEN_LAYERS[family]:
            kernel, bias = token_kernel(model, name, block)
            new_kernel, new_bias = token_kernel(big, name, block)
            expected_kernel, expected_bias = slow_expansion(kernel, bias, LAYER_KINDS[name],
                                                            grid, k)
            np.testing.assert_array_equal(new_kernel, expected_kernel)  # zeros off the blocks
            np.testing.assert_array_equal(new_bias, expected_bias)


@pytest.mark.parametrize("family", ["mixer", "resmlp"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_other_parameters_are_copied_and_the_input_is_unchanged(framework, family):
    model = random_model(family, framework)
    before = params(model)
    big = expand_token_mixing(model, 3 * model.config.image_size)

    after, expanded = params(model), params(big)
    assert after.keys() == before.keys() == expanded.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)
        if not any(name.replace(".", "/") in key.replace(".", "/")
                   for name in TOKEN_LAYERS[family]):
            np.testing.assert_array_equal(expanded[key], value)


@pytest.mark.parametrize("family", ["mixer", "resmlp"])
def test_new_config(family):
    config = CONFIGS[family]
    big = expand_token_mixing(build(config, "flax"), 3 * config.image_size).config
    assert big.image_size == 3 * config.image_size
    assert big.num_tokens == 9 * config.num_tokens
    if family == "mixer":
        assert big.tokens_mlp_dim == 9 * config.tokens_mlp_dim
    assert type(big) is type(config)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("new_size", [24, 40, 8, 0])
def test_scale_factor_must_be_an_integer(framework, new_size):
    model = build(CONFIGS["mixer"], framework)
    with pytest.raises(ValueError, match=rf"multiple K >= 1 of .* image_size 16 .*"
                                         rf"\(expected 16, 32, 48, \.\.\.\), got {new_size}\."):
        expand_token_mixing(model, new_size)
