"""Cost against tokens: the analytic counts agree with the modules and with XLA, the
quadratic share has its closed form, and the throughput helpers keep to their budget."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from mixer_ref import get_config
from mixer_ref.ablations import num_params
from mixer_ref.cost import (
    AttentionBlock,
    attention_block_macs,
    attention_block_params,
    images_per_second,
    mixer_block_macs,
    mixer_block_params,
    quadratic_share,
    throughput_within_budget,
    zero_model,
)
from mixer_ref.flax import MixerBlock

C, D_C, D_S = 32, 128, 16


def mixer_config(s: int, d_s: int = D_S):
    side = int(s**0.5) * 4
    return get_config("mixer_tiny", image_size=side, hidden_dim=C, tokens_mlp_dim=d_s,
                      channels_mlp_dim=D_C)


def xla_flops(module, shape) -> float:
    graphdef, state = nnx.split(module)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    return forward.lower(state, jax.ShapeDtypeStruct(shape, jnp.float32)).cost_analysis()["flops"]


@pytest.mark.parametrize("s", [16, 64])
def test_block_parameter_counts_match_the_modules(s):
    mixer = MixerBlock(mixer_config(s), rngs=nnx.Rngs(0))
    assert num_params(mixer) == sum(mixer_block_params(s, C, D_S, D_C).values())
    attention = AttentionBlock(C, 4, D_C, rngs=nnx.Rngs(0))
    assert num_params(attention) == sum(attention_block_params(C, D_C).values())


def test_mixer_parameters_grow_linearly_with_fixed_d_s_and_quadratically_with_d_s_of_s():
    fixed = [mixer_block_params(s, C, D_S, D_C)["token_mixing"] for s in (64, 128, 256)]
    assert fixed[2] - fixed[1] == 2 * (fixed[1] - fixed[0])  # affine in S
    grown = [mixer_block_params(s, C, s // 2, D_C)["token_mixing"] for s in (64, 128)]
    assert grown[1] / grown[0] == pytest.approx(4, rel=0.02)


@pytest.mark.parametrize("s", [16, 64])
def test_block_macs_account_for_xlas_flops_to_within_elementwise_work(s):
    mixer = MixerBlock(mixer_config(s), rngs=nnx.Rngs(0))
    counted = 2 * sum(mixer_block_macs(s, C, D_S, D_C).values())
    assert counted <= xla_flops(mixer, (1, s, C)) <= 1.15 * counted
    attention = AttentionBlock(C, 4, D_C, rngs=nnx.Rngs(0))
    counted = 2 * sum(attention_block_macs(s, C, D_C).values())
    assert counted <= xla_flops(attention, (1, s, C)) <= 1.15 * counted


def test_quadratic_share_has_its_closed_form_and_is_small_for_vit_b16():
    assert quadratic_share(196, 768, 3072) == pytest.approx(196 / (2 * 768 + 196 + 3072))
    assert 0.03 < quadratic_share(196, 768, 3072) < 0.05
    assert quadratic_share(4 * 768 + 2 * 768, 768, 3072) == pytest.approx(0.5)


def test_zero_model_has_the_registry_structure_and_zero_weights():
    config = get_config("mixer_tiny")
    model = zero_model(config)
    assert all(not jnp.any(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert model(jnp.ones((1, 32, 32, 3))).shape == (1, config.num_classes)


def test_throughput_helpers_measure_and_skip_what_does_not_fit():
    assert images_per_second(AttentionBlock(C, 4, D_C, rngs=nnx.Rngs(0)),
                             jnp.zeros((2, 16, C)), repeats=1) > 0
    small = get_config("mixer_tiny")
    huge = dataclasses.replace(small, name="huge", hidden_dim=2048, channels_mlp_dim=8192)
    configs = {"small": small, "huge": huge}
    result = throughput_within_budget(configs, budget_s=0.0, repeats=1)
    assert result["small"] > 0 and result["huge"] is None
    reference = dataclasses.replace(small, name="reference", hidden_dim=96)
    result = throughput_within_budget({"small": small, "reference": reference}, budget_s=0.0,
                                      repeats=1, always=["reference"])
    assert result["small"] > 0 and result["reference"] > 0
