"""ResMLP's ablations (Touvron et al., 2021, ablation table): the unablated variant is
mixer_ref's ResMLP, each patch-communication layer mixes what it should and nothing else,
and the counts follow the definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixer_ref import get_config
from mixer_ref.ablations import (
    AblatedResMLP,
    AblatedResMLPBlock,
    num_params,
    patch_mixing_macs,
    variant,
)
from mixer_ref.flax import ResMLP

CONFIG = get_config("resmlp_tiny", image_size=16, hidden_dim=16, num_classes=3)  # 4×4 grid
S, C = CONFIG.num_tokens, CONFIG.hidden_dim


def test_affine_with_linear_patch_mixing_is_mixer_refs_resmlp():
    ours, reference = AblatedResMLP(CONFIG, rngs=nnx.Rngs(0)), ResMLP(CONFIG, rngs=nnx.Rngs(0))
    ours_flat = nnx.to_flat_state(nnx.state(ours, nnx.Param))
    reference_flat = nnx.to_flat_state(nnx.state(reference, nnx.Param))
    assert [path for path, _ in ours_flat] == [path for path, _ in reference_flat]
    for (_, a), (_, b) in zip(ours_flat, reference_flat, strict=True):
        np.testing.assert_array_equal(a[...], b[...])
    images = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    np.testing.assert_array_equal(ours(images), reference(images))


def test_no_normalisation_equals_affine_at_its_identity_initialisation():
    affine = AblatedResMLPBlock(CONFIG, norm="affine", rngs=nnx.Rngs(0))
    none = AblatedResMLPBlock(CONFIG, norm="none", rngs=nnx.Rngs(0))
    shared = nnx.filter_state(nnx.state(affine, nnx.Param),
                              lambda path, _: not str(path[0]).startswith("norm"))
    nnx.update(none, shared)
    x = jax.random.normal(jax.random.key(1), (2, S, C))
    np.testing.assert_allclose(none(x), affine(x), rtol=1e-6, atol=1e-6)
    assert num_params(affine) - num_params(none) == 4 * C  # two Affines of α and β


def test_layernorm_makes_the_block_ignore_the_scale_of_each_token():
    block = AblatedResMLPBlock(CONFIG, norm="layernorm", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, S, C))
    np.testing.assert_allclose(block.norm1(3 * x), block.norm1(x), atol=1e-5)


def perturbed_output(patch_mixing: str, token: int, channel: int) -> np.ndarray:
    """Which (token, channel) entries of the patch-mixing output a change of one input
    entry reaches."""
    block = AblatedResMLPBlock(CONFIG, patch_mixing=patch_mixing, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (1, S, C))
    y = block.mix_patches(x)
    y_moved = block.mix_patches(x.at[0, token, channel].add(1.0))
    return np.asarray(jnp.abs(y_moved - y)[0] > 1e-7)


@pytest.mark.parametrize("patch_mixing", ["linear", "mlp", "conv"])
def test_patch_mixing_acts_on_each_channel_separately(patch_mixing):
    reached = perturbed_output(patch_mixing, token=5, channel=2)
    assert reached[:, 2].any() and not np.delete(reached, 2, axis=1).any()


def test_the_linear_layer_reaches_every_patch_and_the_conv_only_the_3x3_neighbours():
    # Token 0 is the top-left patch of the 4×4 grid, row-major.
    assert perturbed_output("linear", 0, 0)[:, 0].all()
    reached = perturbed_output("conv", 0, 0)[:, 0].reshape(4, 4)
    expected = np.zeros((4, 4), bool)
    expected[:2, :2] = True
    np.testing.assert_array_equal(reached, expected)


def test_conv_is_a_depthwise_3x3_convolution_with_zero_padding():
    block = AblatedResMLPBlock(CONFIG, patch_mixing="conv", rngs=nnx.Rngs(0))
    x = np.asarray(jax.random.normal(jax.random.key(1), (1, S, C)))
    kernel = np.asarray(block.conv_tokens.kernel[...])[:, :, 0, :]  # (3, 3, C)
    grid = np.pad(x.reshape(4, 4, C), ((1, 1), (1, 1), (0, 0)))
    by_hand = np.zeros((4, 4, C))
    for i in range(4):
        for j in range(4):
            by_hand[i, j] = (grid[i:i + 3, j:j + 3] * kernel).sum((0, 1))
    by_hand += np.asarray(block.conv_tokens.bias[...])
    np.testing.assert_allclose(block.mix_patches(x)[0], by_hand.reshape(S, C), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("patch_mixing, weights", [
    ("linear", S * S + S), ("mlp", 2 * 4 * S * S + 4 * S + S), ("conv", 9 * C + C)])
def test_parameter_counts_differ_only_in_the_patch_mixing_layer(patch_mixing, weights):
    linear = AblatedResMLP(CONFIG, rngs=nnx.Rngs(0))
    ablated = AblatedResMLP(CONFIG, patch_mixing=patch_mixing, rngs=nnx.Rngs(0))
    n = CONFIG.num_blocks
    assert num_params(ablated) - num_params(linear) == n * (weights - (S * S + S))


def xla_flops(fn, *args) -> float:
    return jax.jit(fn).lower(*args).cost_analysis()["flops"]


def test_patch_mixing_macs_match_xla_up_to_bias_gelu_and_padding():
    x = jax.ShapeDtypeStruct((1, S, C), jnp.float32)
    # XLA counts the exact GELU's erf as many FLOPs; the MLP's hidden layer has C × 4S.
    gelu = xla_flops(lambda h: jax.nn.gelu(h, approximate=False),
                     jax.ShapeDtypeStruct((1, C, 4 * S), jnp.float32))
    # XLA skips the taps that fall on the zero padding: (3n - 2)² of the 9n² on an n×n grid.
    padding = 2 * (9 * S - (3 * 4 - 2) ** 2) * C
    for patch_mixing, extra in (("linear", 0), ("mlp", gelu), ("conv", -padding)):
        block = AblatedResMLPBlock(CONFIG, patch_mixing=patch_mixing, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(block)
        xla = xla_flops(lambda state, x, g=graphdef: nnx.merge(g, state).mix_patches(x),
                        state, x)
        assert xla - extra == pytest.approx(2 * patch_mixing_macs(patch_mixing, S, C),
                                            rel=0.15), patch_mixing


def test_variant_builds_for_fit_module_and_bad_choices_raise():
    model = variant(norm="layernorm", patch_mixing="mlp", image_size=16)(7, rngs=nnx.Rngs(0))
    assert model(jnp.zeros((2, 16, 16, 3))).shape == (2, 7)
    assert model.config.num_classes == 7 and model.norm_kind == "layernorm"
    with pytest.raises(ValueError, match="norm must be one of"):
        AblatedResMLP(CONFIG, norm="batchnorm", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="patch_mixing must be one of"):
        AblatedResMLP(CONFIG, patch_mixing="attention", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="expected a ResMLP config"):
        variant("mixer_tiny")(10, rngs=nnx.Rngs(0))
