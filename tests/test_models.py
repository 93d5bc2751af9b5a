"""The models: shapes, exact parameter counts, initialisers, determinism and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import mixer_ref
from mixer_ref.models import build

# Exact counts with a 1000-class head: the official code's tests (Mixer) and deit (ResMLP).
OFFICIAL_COUNTS = {
    "mixer_b16": 59_880_472,
    "mixer_b32": 60_293_428,
    "mixer_l16": 208_196_168,
    "resmlp_s12": 15_350_872,
    "resmlp_s24": 30_020_680,
    "resmlp_s36": 44_690_488,
    "resmlp_b24_8": 129_138_280,
}
# Table 1 of the Mixer paper: parameters without the head, in millions.
TABLE_1_MILLIONS = {"mixer_s32": 19, "mixer_s16": 18, "mixer_b32": 60, "mixer_b16": 59,
                    "mixer_l32": 206, "mixer_l16": 207, "mixer_h14": 431}


def abstract(name, framework, **overrides):
    """The model with shapes only: no memory, no initialisation cost."""
    config = mixer_ref.get_config(name, **overrides)
    if framework == "flax":
        return nnx.eval_shape(lambda: build(config, "flax"))
    with torch.device("meta"):
        return build(config, "torch")


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("name", OFFICIAL_COUNTS)
def test_parameter_counts_equal_the_official_ones(name, framework):
    assert mixer_ref.count_params(abstract(name, framework)) == OFFICIAL_COUNTS[name]


@pytest.mark.parametrize("name", TABLE_1_MILLIONS)
def test_parameter_counts_without_head_round_to_table_1(name):
    model = abstract(name, "flax")
    head = model.config.hidden_dim * 1000 + 1000
    assert round((mixer_ref.count_params(model) - head) / 1e6) == TABLE_1_MILLIONS[name]


def test_resmlp_b24_has_about_116m_parameters():
    # ResMLP paper, Table 3: 115.7 M.
    assert round(mixer_ref.count_params(abstract("resmlp_b24", "flax")) / 1e5) == 1157


@pytest.mark.parametrize("name", ["mixer_tiny", "resmlp_tiny"])
def test_logit_shapes_and_layouts(name):
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    flax_model = mixer_ref.create_model(name, "flax", num_classes=7)
    torch_model = mixer_ref.create_model(name, "torch", num_classes=7)
    flax_model.eval(), torch_model.eval()
    assert flax_model(jnp.asarray(images)).shape == (3, 7)
    assert torch_model(torch.from_numpy(images).permute(0, 3, 1, 2)).shape == (3, 7)
    assert flax_model.config.num_classes == torch_model.config.num_classes == 7


@pytest.mark.parametrize("framework", ["flax", "torch"])
def test_mixer_initial_logits_are_zero_because_the_head_is(framework):
    model = mixer_ref.create_model("mixer_tiny", framework)
    model.eval()
    x = np.ones((2, 32, 32, 3), np.float32)
    logits = model(jnp.asarray(x)) if framework == "flax" else model(
        torch.from_numpy(x).permute(0, 3, 1, 2)).detach()
    assert np.all(np.asarray(logits) == 0)


def named_params(model) -> dict[str, np.ndarray]:
    """Flat {path: array} in the Flax naming (torch 'weight' → 'kernel'/'scale')."""
    if mixer_ref.models.framework_of(model) == "flax":
        flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
        return {"/".join(map(str, k)): np.asarray(v.get_value()) for k, v in flat}
    return {k.replace(".", "/"): v.detach().numpy() for k, v in model.state_dict().items()}


def lecun_std(fan_in):
    return math.sqrt(1.0 / fan_in)


@pytest.mark.parametrize("framework", ["flax", "torch"])
def test_mixer_initialisers_match_the_official_code(framework):
    """lecun_normal kernels (variance 1/fan_in, truncated at 2σ), zero biases, zero head."""
    model = mixer_ref.create_model("mixer_course32", framework)
    params = named_params(model)
    c = model.config
    weight = "kernel" if framework == "flax" else "weight"
    kernels = {
        "stem/proj": c.patch_size**2 * 3,
        "blocks/0/token_mixing/fc1": c.num_tokens,
        "blocks/0/token_mixing/fc2": c.tokens_mlp_dim,
        "blocks/0/channel_mixing/fc1": c.hidden_dim,
        "blocks/0/channel_mixing/fc2": c.channels_mlp_dim,
    }
    for path, fan_in in kernels.items():
        w = params[f"{path}/{weight}"]
        assert w.std() == pytest.approx(lecun_std(fan_in), rel=0.05), path
        assert np.abs(w).max() <= 2 * lecun_std(fan_in) / 0.87962566103423978 + 1e-6, path
        assert np.all(params[f"{path}/bias"] == 0), path
    assert np.all(params[f"head/{weight}"] == 0) and np.all(params["head/bias"] == 0)
    scale = "scale" if framework == "flax" else "weight"
    assert np.all(params[f"blocks/0/norm1/{scale}"] == 1)
    assert np.all(params["pre_head_layer_norm/bias"] == 0)


@pytest.mark.parametrize("framework", ["flax", "torch"])
def test_resmlp_initialisers_match_deit(framework):
    """Linear ~ timm's trunc_normal_(std=0.02) (truncated at ±2, so in effect normal), zero
    biases, Affine (1, 0), LayerScale at ε, the stem as PyTorch's default uniform(±1/√fan_in)."""
    model = mixer_ref.create_model("resmlp_course32", framework)
    params = named_params(model)
    weight = "kernel" if framework == "flax" else "weight"
    for path in ["blocks/0/linear_tokens", "blocks/0/mlp/fc1", "blocks/3/mlp/fc2", "head"]:
        w = params[f"{path}/{weight}"]
        assert w.std() == pytest.approx(0.02, rel=0.05), path
        assert np.abs(w).max() > 0.04  # not truncated at 2σ: beyond it lie 4.6% of samples
        assert np.all(params[f"{path}/bias"] == 0)
    assert np.all(params["blocks/0/gamma_1"] == 0.1) and np.all(params["blocks/5/gamma_2"] == 0.1)
    assert np.all(params["blocks/0/norm1/alpha"] == 1) and np.all(params["norm/beta"] == 0)
    bound = 1 / math.sqrt(4 * 4 * 3)
    stem = params[f"stem/proj/{weight}"]
    assert np.abs(stem).max() <= bound and stem.std() == pytest.approx(bound / math.sqrt(3),
                                                                      rel=0.05)


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("name", ["mixer_tiny", "resmlp_tiny"])
def test_initialisation_is_deterministic_by_seed(name, framework):
    a = named_params(mixer_ref.create_model(name, framework, seed=3))
    b = named_params(mixer_ref.create_model(name, framework, seed=3))
    c = named_params(mixer_ref.create_model(name, framework, seed=4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a if a[k].std() > 0)


def run(model, x_nhwc):
    if mixer_ref.models.framework_of(model) == "flax":
        return np.asarray(model(jnp.asarray(x_nhwc)))
    return model(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)).detach().numpy()


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("name", ["mixer_tiny", "resmlp_tiny"])
def test_dropout_and_stochastic_depth_act_in_training_only(name, framework):
    model = mixer_ref.create_model(name, framework, dropout=0.3, stoch_depth=0.3, seed=1)
    if framework == "torch":
        torch.nn.init.normal_(model.head.weight)
    else:
        model.head.kernel.set_value(jax.random.normal(jax.random.key(0), model.head.kernel.shape))
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    model.train()
    assert not np.allclose(run(model, x), run(model, x))
    model.eval()
    np.testing.assert_array_equal(run(model, x), run(model, x))


def test_drop_path_drops_whole_samples_and_rescales():
    from mixer_ref.flax.layers import drop_path
    from mixer_ref.torch.layers import DropPath

    x = np.ones((64, 5, 3), np.float32)
    flax_out = np.asarray(drop_path(0.25, rngs=nnx.Rngs(dropout=0))(jnp.asarray(x)))
    torch_out = DropPath(0.25).train()(torch.from_numpy(x)).numpy()
    for out in (flax_out, torch_out):
        per_sample = out.reshape(64, -1)
        assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / 0.75)}
        assert np.all(per_sample.min(1) == per_sample.max(1))  # whole sample kept or dropped
        assert 0 < (per_sample[:, 0] == 0).sum() < 64


BAD_INPUTS = [
    ((2, 32, 32), np.float32, r"Expected a rank-4 .* got shape \(2, 32, 32\)"),
    ((2, 32, 32, 1), np.float32, r"Expected 3 channels .* got 1"),
    ((2, 32, 32, 3), np.uint8, r"Expected a floating-point image batch, got dtype .*uint8"),
    ((2, 30, 30, 3), np.float32, r"not divisible by the patch size 4: expected multiples of 4, "
                                 r"got 30x30"),
    ((2, 64, 64, 3), np.float32, r"built for 32x32 images \(64 tokens\); got 64x64"),
]


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("shape, dtype, message", BAD_INPUTS)
def test_bad_input_raises_with_expected_and_given(framework, shape, dtype, message):
    model = mixer_ref.create_model("mixer_tiny", framework)
    x = np.zeros(shape, dtype)
    if framework == "torch" and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    with pytest.raises(ValueError, match=message):
        model(jnp.asarray(x) if framework == "flax" else torch.from_numpy(x))


def test_bad_input_is_caught_under_jit():
    model = mixer_ref.create_model("resmlp_tiny")
    with pytest.raises(ValueError, match="built for 32x32"):
        nnx.jit(lambda m, x: m(x))(model, jnp.zeros((1, 16, 16, 3)))


def test_unknown_framework():
    with pytest.raises(ValueError, match=r"framework must be one of \('flax', 'torch'\), "
                                         r"got 'jax'"):
        mixer_ref.create_model("mixer_tiny", "jax")


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("name", ["mixer_tiny", "resmlp_tiny"])
def test_an_empty_batch_gives_empty_logits(name, framework):
    model = mixer_ref.create_model(name, framework, num_classes=7)
    model.eval()
    if framework == "flax":
        logits = model(jnp.zeros((0, 32, 32, 3)))
    else:
        logits = model(torch.zeros((0, 3, 32, 32)))
    assert tuple(logits.shape) == (0, 7)


@pytest.mark.parametrize("field, value", [("image_size", 0), ("hidden_dim", 0),
                                          ("patch_size", 0), ("num_classes", -3),
                                          ("num_classes", 2.5), ("num_classes", "10"),
                                          ("num_blocks", True), ("tokens_mlp_dim", -1)])
def test_create_model_validates_its_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive integer, got "
                       f"{value!r} \\(create_model\\('mixer_tiny'\\)\\)"):
        mixer_ref.create_model("mixer_tiny", **{field: value})
