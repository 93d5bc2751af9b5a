"""Specification of ``mixer_ref.folding``: ResMLP's Affines folded into linear layers."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from mixer_ref import get_config
from mixer_ref.folding import fold_affine
from mixer_ref.interop import build_with_params, param_shapes
from mixer_ref.models import build

CONFIG = get_config("resmlp_tiny", image_size=16, hidden_dim=32, num_classes=5)
FRAMEWORKS = ("flax", "torch")


def random_model(framework: str, seed: int = 0):
    """A ResMLP with every parameter drawn at random. At initialisation α = 1, β = 0 and the
    biases are zero, so folding them would change nothing and the tests would be vacuous."""
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.2, shape) for k, shape in param_shapes(CONFIG).items()}
    model = build_with_params(CONFIG, params, framework)
    return model.eval() if framework == "torch" else model


def logits(model, images: np.ndarray) -> np.ndarray:
    """Logits for NHWC float32 ``images``, in either framework."""
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            return model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    return np.asarray(model(jnp.asarray(images)))


def params(model) -> dict[str, np.ndarray]:
    """Flat {path: array}, with '.'-joined paths in both frameworks."""
    if isinstance(model, torch.nn.Module):
        return {k: v.numpy().copy() for k, v in model.state_dict().items()}
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(map(str, k)): np.array(v[...]) for k, v in flat}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_folded_model_has_the_same_logits(framework):
    model = random_model(framework)
    images = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype(np.float32)
    expected = logits(model, images)

    folded = logits(fold_affine(model), images)

    scale = np.abs(expected).max()
    assert scale > 0.1 and np.abs(folded - expected).max() > 0  # not vacuous: the sums moved
    np.testing.assert_allclose(folded, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_folded_affines_are_the_identity_and_the_token_branch_is_kept(framework):
    before = params(random_model(framework))
    after = params(fold_affine(random_model(framework)))
    c = CONFIG.hidden_dim
    identity = {"alpha": np.ones(c), "beta": np.zeros(c)}
    for i in range(CONFIG.num_blocks):
        for p in ("alpha", "beta"):
            np.testing.assert_array_equal(after[f"blocks.{i}.norm2.{p}"], identity[p])
            np.testing.assert_array_equal(after[f"blocks.{i}.norm1.{p}"],
                                          before[f"blocks.{i}.norm1.{p}"])
        np.testing.assert_array_equal(after[f"blocks.{i}.gamma_2"], np.ones(c))
        np.testing.assert_array_equal(after[f"blocks.{i}.gamma_1"], before[f"blocks.{i}.gamma_1"])
    for p in ("alpha", "beta"):
        np.testing.assert_array_equal(after[f"norm.{p}"], identity[p])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_folding_twice_changes_nothing(framework):
    once = fold_affine(random_model(framework))
    twice = params(fold_affine(once))
    for key, value in params(once).items():
        np.testing.assert_array_equal(twice[key], value, err_msg=key)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_input_model_is_unchanged(framework):
    model = random_model(framework)
    before = params(model)
    fold_affine(model)
    after = params(model)
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_mixer_is_rejected(framework):
    config = get_config("mixer_tiny")
    if framework == "flax":
        mixer = nnx.eval_shape(lambda: build(config, "flax"))  # shapes only: nothing to compute
    else:
        mixer = build(config, "torch")
    with pytest.raises(ValueError, match=r"expects a ResMLP model, got MlpMixer .*LayerNorm"):
        fold_affine(mixer)
