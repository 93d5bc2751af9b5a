"""Layouts and Flax ⇄ torch conversion: the tables are bijective and spell the foreign keys
exactly; converted models give the same logits; a round trip keeps every bit."""

import math
import re

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mixer_ref
from mixer_ref import interop


def random_params(config, seed=0):
    """Non-zero weights (ours) of a sensible scale for every parameter, the head included."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, shape in interop.param_shapes(config).items():
        noise = rng.standard_normal(shape, dtype=np.float32)
        leaf = key.rsplit("/", 1)[-1]
        if leaf == "kernel":
            params[key] = noise / np.float32(math.sqrt(math.prod(shape[:-1])))
        elif leaf in ("scale", "alpha"):
            params[key] = 1 + 0.1 * noise
        else:  # biases, β and LayerScale γ
            params[key] = 0.1 * noise
    return params


def random_model(name, framework, **overrides):
    config = mixer_ref.get_config(name, **overrides)
    return interop.build_with_params(config, random_params(config), framework)


def logits(model, images):
    """Logits of a Flax (NHWC) or torch (NCHW) model for NHWC ``images``."""
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            return model(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    return np.asarray(model(jnp.asarray(images)))


def assert_same_params(actual, expected):
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key].dtype == expected[key].dtype, key
        assert np.array_equal(actual[key], expected[key]), key


# Every key of a one-block model in each foreign layout, spelled out by hand from
# vit_jax/models_mixer.py, deit resmlp_models.py and timm mlp_mixer.py.
LITERAL_KEYS = {
    ("official", "mixer"): [
        "stem/kernel", "stem/bias",
        "MixerBlock_0/LayerNorm_0/scale", "MixerBlock_0/LayerNorm_0/bias",
        "MixerBlock_0/token_mixing/Dense_0/kernel", "MixerBlock_0/token_mixing/Dense_0/bias",
        "MixerBlock_0/token_mixing/Dense_1/kernel", "MixerBlock_0/token_mixing/Dense_1/bias",
        "MixerBlock_0/LayerNorm_1/scale", "MixerBlock_0/LayerNorm_1/bias",
        "MixerBlock_0/channel_mixing/Dense_0/kernel", "MixerBlock_0/channel_mixing/Dense_0/bias",
        "MixerBlock_0/channel_mixing/Dense_1/kernel", "MixerBlock_0/channel_mixing/Dense_1/bias",
        "pre_head_layer_norm/scale", "pre_head_layer_norm/bias", "head/kernel", "head/bias",
    ],
    ("official", "resmlp"): [
        "patch_embed.proj.weight", "patch_embed.proj.bias",
        "blocks.0.norm1.alpha", "blocks.0.norm1.beta", "blocks.0.attn.weight",
        "blocks.0.attn.bias", "blocks.0.gamma_1", "blocks.0.norm2.alpha", "blocks.0.norm2.beta",
        "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc1.bias", "blocks.0.mlp.fc2.weight",
        "blocks.0.mlp.fc2.bias", "blocks.0.gamma_2", "norm.alpha", "norm.beta",
        "head.weight", "head.bias",
    ],
    ("timm", "mixer"): [
        "stem.proj.weight", "stem.proj.bias", "blocks.0.norm1.weight", "blocks.0.norm1.bias",
        "blocks.0.mlp_tokens.fc1.weight", "blocks.0.mlp_tokens.fc1.bias",
        "blocks.0.mlp_tokens.fc2.weight", "blocks.0.mlp_tokens.fc2.bias",
        "blocks.0.norm2.weight", "blocks.0.norm2.bias",
        "blocks.0.mlp_channels.fc1.weight", "blocks.0.mlp_channels.fc1.bias",
        "blocks.0.mlp_channels.fc2.weight", "blocks.0.mlp_channels.fc2.bias",
        "norm.weight", "norm.bias", "head.weight", "head.bias",
    ],
    ("timm", "resmlp"): [
        "stem.proj.weight", "stem.proj.bias", "blocks.0.norm1.alpha", "blocks.0.norm1.beta",
        "blocks.0.linear_tokens.weight", "blocks.0.linear_tokens.bias", "blocks.0.ls1",
        "blocks.0.norm2.alpha", "blocks.0.norm2.beta", "blocks.0.mlp_channels.fc1.weight",
        "blocks.0.mlp_channels.fc1.bias", "blocks.0.mlp_channels.fc2.weight",
        "blocks.0.mlp_channels.fc2.bias", "blocks.0.ls2", "norm.alpha", "norm.beta",
        "head.weight", "head.bias",
    ],
}


@pytest.mark.parametrize("layout", interop.LAYOUTS.values(), ids=str)
def test_tables_are_bijective(layout):
    # 12 blocks, so that two-digit block indices are mapped too.
    config = mixer_ref.get_config(f"{layout.family}_tiny", num_blocks=12)
    params = random_params(config)
    theirs = interop.from_canonical(params, layout)
    assert len(theirs) == len(params)  # no two of our keys share one of theirs
    assert_same_params(interop.to_canonical(theirs, layout), params)
    # Every row is used, once per block.
    patterns = {re.sub(r"^blocks/\d+/", "blocks/{i}/", key) for key in params}
    assert patterns == {row.ours for row in layout.rows}
    assert len(layout.rows) == len(patterns)


def one_block_shapes(name, family):
    """Shapes in layout ``name`` of the one-block tiny model: P=4, C=64, S=64, 10 classes."""
    config = mixer_ref.get_config(f"{family}_tiny", num_blocks=1)
    layout = interop.get_layout(name, family)
    return interop.shapes_from_canonical(interop.param_shapes(config), layout)


@pytest.mark.parametrize(("name", "family"), LITERAL_KEYS)
def test_foreign_keys_are_spelled_as_released(name, family):
    assert sorted(one_block_shapes(name, family)) == sorted(LITERAL_KEYS[name, family])


@pytest.mark.parametrize(("name", "family", "key", "shape"), [
    ("torch", "mixer", "stem.proj.weight", (64, 3, 4, 4)),  # Conv2d: (C, 3, P, P)
    ("torch", "mixer", "head.weight", (10, 64)),  # Linear: (out, in)
    ("torch", "resmlp", "norm.alpha", (64,)),
    ("flax", "mixer", "stem/proj/kernel", (4, 4, 3, 64)),
    ("official", "mixer", "stem/kernel", (4, 4, 3, 64)),  # Flax Conv: (P, P, 3, C)
    ("official", "mixer", "MixerBlock_0/token_mixing/Dense_0/kernel", (64, 32)),  # (S, D_S)
    ("official", "resmlp", "patch_embed.proj.weight", (64, 3, 4, 4)),
    ("official", "resmlp", "blocks.0.mlp.fc1.weight", (256, 64)),
    ("timm", "mixer", "blocks.0.mlp_tokens.fc1.weight", (32, 64)),  # (D_S, S)
    ("timm", "mixer", "blocks.0.mlp_channels.fc2.weight", (64, 256)),  # (C, D_C)
    ("timm", "resmlp", "norm.alpha", (1, 1, 64)),  # timm's Affine broadcasts
    ("timm", "resmlp", "blocks.0.norm1.beta", (1, 1, 64)),
    ("timm", "resmlp", "blocks.0.ls1", (64,)),
])
def test_foreign_shapes(name, family, key, shape):
    assert one_block_shapes(name, family)[key] == shape


@pytest.mark.parametrize("layout", interop.LAYOUTS.values(), ids=str)
def test_detect_layout(layout):
    config = mixer_ref.get_config(f"{layout.family}_tiny")
    keys = list(interop.shapes_from_canonical(interop.param_shapes(config), layout))
    assert interop.detect_layout(keys) == layout
    assert interop.detect_layout(keys[: len(keys) // 2]) == layout  # a partial dict too


def test_detect_layout_rejects_unknown_keys():
    with pytest.raises(ValueError, match="Unrecognised parameter layout.*encoder.weight"):
        interop.detect_layout(["encoder.weight", "decoder.weight"])


@pytest.mark.parametrize(("name", "batch", "tolerance"), [
    ("mixer_tiny", 4, 1e-5),
    ("resmlp_tiny", 4, 1e-5),
    ("mixer_course32", 2, 1e-5),
    ("resmlp_course32", 2, 1e-5),
    ("mixer_course64", 2, 1e-5),
    ("resmlp_course64", 2, 1e-5),
    pytest.param("resmlp_s12", 1, 1e-4, marks=pytest.mark.slow),
    pytest.param("mixer_b16", 1, 1e-4, marks=pytest.mark.slow),
])
def test_flax_and_torch_give_the_same_logits(name, batch, tolerance):
    config = mixer_ref.get_config(name)
    flax_model = interop.build_with_params(config, random_params(config), "flax")
    torch_model = mixer_ref.convert(flax_model, "torch")
    size = config.image_size
    images = np.random.default_rng(1).normal(size=(batch, size, size, 3)).astype(np.float32)
    expected = logits(flax_model, images)
    assert np.abs(expected).max() > 0.1  # a random, non-zero head
    np.testing.assert_allclose(logits(torch_model, images), expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("start", ["flax", "torch"])
@pytest.mark.parametrize("name", ["mixer_tiny", "resmlp_tiny"])
def test_convert_round_trip_keeps_every_bit(name, start):
    model = random_model(name, start)
    other = "torch" if start == "flax" else "flax"
    back = mixer_ref.convert(mixer_ref.convert(model, other), start)
    assert type(back) is type(model) and back.config == model.config
    assert_same_params(interop.flat_params(back), interop.flat_params(model))


def test_converted_models_do_not_share_memory():
    flax_model = random_model("mixer_tiny", "flax")
    before = interop.flat_params(flax_model)
    torch_model = mixer_ref.convert(flax_model, "torch")
    again = mixer_ref.convert(torch_model, "flax")
    with torch.no_grad():
        for p in torch_model.parameters():
            p.add_(1.0)
    assert_same_params(interop.flat_params(flax_model), before)
    assert_same_params(interop.flat_params(again), before)


def test_build_with_params_checks_the_keys():
    config = mixer_ref.get_config("mixer_tiny")
    params = random_params(config)
    params["head/kernel"] = params["head/kernel"][:, :3]
    with pytest.raises(ValueError, match=r"head/kernel: expected \(64, 10\), got \(64, 3\)"):
        interop.build_with_params(config, params, "torch")
