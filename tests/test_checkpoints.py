"""Checkpoint files: exact round trips, the released layouts, architecture inference, head
replacement, and errors that say what was expected and what was given."""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from test_interop import assert_same_params, logits, random_model, random_params

import mixer_ref
from mixer_ref import interop
from mixer_ref.checkpoints import config_from_shapes, load_pretrained, save_checkpoint

FORMATS = (".npz", ".pth", ".safetensors")
TINY = ("mixer_tiny", "resmlp_tiny")


def write(path, state):
    """Writes a flat dict of arrays as the suffix of ``path`` asks (.pth: a plain dict)."""
    if path.suffix == ".npz":
        np.savez(path, **state)
    elif path.suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("name", TINY)
def test_save_then_load_is_exact(name, suffix, framework, tmp_path):
    model = random_model(name, framework)
    save_checkpoint(model, tmp_path / f"model{suffix}")
    loaded = load_pretrained(tmp_path / f"model{suffix}", framework=framework)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert_same_params(interop.flat_params(loaded), interop.flat_params(model))


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("layout", interop.LAYOUT_NAMES)
@pytest.mark.parametrize("name", TINY)
def test_every_layout_in_every_format_loads_into_the_other_framework(name, layout, suffix,
                                                                      tmp_path):
    model = random_model(name, "flax")
    save_checkpoint(model, tmp_path / f"model{suffix}", layout=layout)
    loaded = load_pretrained(tmp_path / f"model{suffix}", framework="torch")
    assert loaded.config == model.config
    assert_same_params(interop.flat_params(loaded), interop.flat_params(model))


def test_default_layouts_are_the_released_ones(tmp_path):
    save_checkpoint(random_model("mixer_tiny", "torch"), tmp_path / "mixer.npz")
    with np.load(tmp_path / "mixer.npz") as archive:
        assert "MixerBlock_1/token_mixing/Dense_0/kernel" in archive.files
    save_checkpoint(random_model("resmlp_tiny", "flax"), tmp_path / "resmlp.pth")
    assert "blocks.1.attn.weight" in torch.load(tmp_path / "resmlp.pth", weights_only=True)
    save_checkpoint(random_model("mixer_tiny", "flax"), tmp_path / "mixer.safetensors")
    assert "blocks.1.token_mixing.fc1.weight" in load_file(tmp_path / "mixer.safetensors")


# A one-block model, P=4 on 8×8 images (S=4), C=6, 3 classes; Mixer D_S=5, D_C=7.
def one_block_official_mixer(rng):
    shapes = {
        "stem/kernel": (4, 4, 3, 6), "stem/bias": (6,),
        "MixerBlock_0/LayerNorm_0/scale": (6,), "MixerBlock_0/LayerNorm_0/bias": (6,),
        "MixerBlock_0/token_mixing/Dense_0/kernel": (4, 5),
        "MixerBlock_0/token_mixing/Dense_0/bias": (5,),
        "MixerBlock_0/token_mixing/Dense_1/kernel": (5, 4),
        "MixerBlock_0/token_mixing/Dense_1/bias": (4,),
        "MixerBlock_0/LayerNorm_1/scale": (6,), "MixerBlock_0/LayerNorm_1/bias": (6,),
        "MixerBlock_0/channel_mixing/Dense_0/kernel": (6, 7),
        "MixerBlock_0/channel_mixing/Dense_0/bias": (7,),
        "MixerBlock_0/channel_mixing/Dense_1/kernel": (7, 6),
        "MixerBlock_0/channel_mixing/Dense_1/bias": (6,),
        "pre_head_layer_norm/scale": (6,), "pre_head_layer_norm/bias": (6,),
        "head/kernel": (6, 3), "head/bias": (3,),
    }
    return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}


def one_block_deit_resmlp(rng):
    shapes = {
        "patch_embed.proj.weight": (6, 3, 4, 4), "patch_embed.proj.bias": (6,),
        "blocks.0.norm1.alpha": (6,), "blocks.0.norm1.beta": (6,),
        "blocks.0.attn.weight": (4, 4), "blocks.0.attn.bias": (4,), "blocks.0.gamma_1": (6,),
        "blocks.0.norm2.alpha": (6,), "blocks.0.norm2.beta": (6,),
        "blocks.0.mlp.fc1.weight": (24, 6), "blocks.0.mlp.fc1.bias": (24,),
        "blocks.0.mlp.fc2.weight": (6, 24), "blocks.0.mlp.fc2.bias": (6,),
        "blocks.0.gamma_2": (6,), "norm.alpha": (6,), "norm.beta": (6,),
        "head.weight": (3, 6), "head.bias": (3,),
    }
    return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}


def patches(images, p):
    """(B, H, W, 3) → (B, S, P·P·3): row-major patches, each flattened as (h, w, channel)."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, -1, p * p * c)


def official_mixer_logits(w, images):
    """vit_jax/models_mixer.py in float64 NumPy, reading the released key names."""
    def dense(x, name):
        return x @ w[f"{name}/kernel"] + w[f"{name}/bias"]

    def layer_norm(x, name):
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
        return x * w[f"{name}/scale"] + w[f"{name}/bias"]

    def gelu(x):  # Flax's nn.gelu: the tanh approximation
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    w = {k: v.astype(np.float64) for k, v in w.items()}
    kernel = w["stem/kernel"]
    x = patches(images, kernel.shape[0]) @ kernel.reshape(-1, kernel.shape[-1]) + w["stem/bias"]
    block = "MixerBlock_0"
    y = layer_norm(x, f"{block}/LayerNorm_0").swapaxes(1, 2)
    y = dense(gelu(dense(y, f"{block}/token_mixing/Dense_0")), f"{block}/token_mixing/Dense_1")
    x = x + y.swapaxes(1, 2)
    y = layer_norm(x, f"{block}/LayerNorm_1")
    x = x + dense(gelu(dense(y, f"{block}/channel_mixing/Dense_0")),
                  f"{block}/channel_mixing/Dense_1")
    return dense(layer_norm(x, "pre_head_layer_norm").mean(1), "head")


def deit_resmlp_logits(w, images):
    """deit resmlp_models.py in float64 NumPy, reading the released key names."""
    def linear(x, name):
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def affine(x, name):
        return w[f"{name}.alpha"] * x + w[f"{name}.beta"]

    def gelu(x):  # nn.GELU: exact, with erf
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))

    w = {k: v.astype(np.float64) for k, v in w.items()}
    weight = w["patch_embed.proj.weight"]  # (C, 3, P, P) → (P, P, 3, C), as patches() flattens
    kernel = weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0])
    x = patches(images, weight.shape[-1]) @ kernel + w["patch_embed.proj.bias"]
    y = linear(affine(x, "blocks.0.norm1").swapaxes(1, 2), "blocks.0.attn").swapaxes(1, 2)
    x = x + w["blocks.0.gamma_1"] * y
    y = linear(gelu(linear(affine(x, "blocks.0.norm2"), "blocks.0.mlp.fc1")), "blocks.0.mlp.fc2")
    x = x + w["blocks.0.gamma_2"] * y
    return linear(affine(x, "norm").mean(1), "head")


@pytest.mark.parametrize("framework", ["flax", "torch"])
def test_a_released_mixer_npz_computes_the_official_function(framework, tmp_path):
    rng = np.random.default_rng(0)
    weights = one_block_official_mixer(rng)
    np.savez(tmp_path / "Mixer-custom.npz", **weights)
    model = load_pretrained(tmp_path / "Mixer-custom.npz", framework=framework)
    assert model.config == mixer_ref.MixerConfig("mixer_p4_c6_n1_ds5_dc7_8px", patch_size=4,
                                                 image_size=8, hidden_dim=6, tokens_mlp_dim=5,
                                                 channels_mlp_dim=7, num_blocks=1, num_classes=3)
    images = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(logits(model, images), official_mixer_logits(weights, images),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", ["flax", "torch"])
def test_a_released_deit_pth_computes_the_official_function(framework, tmp_path):
    rng = np.random.default_rng(0)
    weights = one_block_deit_resmlp(rng)
    torch.save({"model": {k: torch.from_numpy(v) for k, v in weights.items()}, "epoch": 399},
               tmp_path / "resmlp_custom.pth")
    model = load_pretrained(tmp_path / "resmlp_custom.pth", framework=framework)
    assert (model.config.family, model.config.num_tokens, model.config.hidden_dim,
            model.config.mlp_ratio, model.config.num_classes) == ("resmlp", 4, 6, 4, 3)
    images = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(logits(model, images), deit_resmlp_logits(weights, images),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", interop.LAYOUT_NAMES)
@pytest.mark.parametrize("name", TINY)
def test_foreign_state_dicts_load_and_are_named_from_the_registry(name, layout, tmp_path):
    config = mixer_ref.get_config(name)
    params = random_params(config)
    state = interop.from_canonical(params, interop.get_layout(layout, config.family))
    for suffix in (".pth", ".safetensors"):
        write(tmp_path / f"weights{suffix}", state)
        model = load_pretrained(tmp_path / f"weights{suffix}")
        assert model.config == config  # inferred from the shapes: "mixer_tiny", "resmlp_tiny"
        assert_same_params(interop.flat_params(model), params)


@pytest.mark.parametrize("name", ["mixer_b16", "mixer_s32", "resmlp_s12", "resmlp_b24_8"])
def test_config_from_shapes_names_registry_models(name):
    config = mixer_ref.get_config(name)
    shapes = interop.param_shapes(config)
    assert config_from_shapes(shapes, config.family) == config
    in21k = {**shapes, "head/kernel": (config.hidden_dim, 21843), "head/bias": (21843,)}
    assert config_from_shapes(in21k, config.family) == mixer_ref.get_config(
        name, num_classes=21843)


def test_config_from_shapes_names_custom_models_by_their_sizes():
    for config, name in [
        (mixer_ref.get_config("mixer_tiny", tokens_mlp_dim=48),
         "mixer_p4_c64_n2_ds48_dc256_32px"),
        (mixer_ref.get_config("resmlp_tiny", image_size=16, mlp_ratio=2),
         "resmlp_p4_c64_n2_r2_16px"),
    ]:
        inferred = config_from_shapes(interop.param_shapes(config), config.family)
        assert inferred == dataclasses.replace(config, name=name)


def test_config_from_shapes_needs_a_square_token_grid():
    shapes = interop.param_shapes(mixer_ref.get_config("mixer_tiny"))
    shapes["blocks/0/token_mixing/fc1/kernel"] = (60, 32)
    with pytest.raises(ValueError, match="square number of tokens.*S=60"):
        config_from_shapes(shapes, "mixer")


@pytest.mark.parametrize("framework", ["flax", "torch"])
@pytest.mark.parametrize("name", TINY)
def test_num_classes_gives_a_fresh_zero_head(name, framework, tmp_path):
    config = mixer_ref.get_config(name)
    params = random_params(config)
    save_checkpoint(interop.build_with_params(config, params, "flax"), tmp_path / "m.pth")
    model = load_pretrained(tmp_path / "m.pth", framework=framework, num_classes=5)
    assert model.config.num_classes == 5
    loaded = interop.flat_params(model)
    assert not loaded.pop("head/kernel").any() and not loaded.pop("head/bias").any()
    assert logits(model, np.ones((1, 32, 32, 3), np.float32)).shape == (1, 5)
    assert_same_params(loaded, {k: v for k, v in params.items() if not k.startswith("head/")})


def test_a_name_sets_the_architecture_and_keeps_the_checkpoint_head(tmp_path):
    config = mixer_ref.get_config("mixer_tiny", num_classes=7)
    save_checkpoint(interop.build_with_params(config, random_params(config), "flax"),
                    tmp_path / "m.npz")
    assert load_pretrained(tmp_path / "m.npz", name="mixer_tiny").config == config
    with pytest.raises(ValueError, match="mixer checkpoint.*'ResMLP-S12' is a resmlp model"):
        load_pretrained(tmp_path / "m.npz", name="ResMLP-S12")


def test_a_mismatch_is_one_error_naming_keys_and_both_shapes(tmp_path):
    config = mixer_ref.get_config("mixer_tiny")
    state = interop.from_canonical(random_params(config), interop.get_layout("official", "mixer"))
    del state["MixerBlock_1/LayerNorm_0/scale"]
    state["MixerBlock_1/LayerNorm_2/scale"] = np.ones(64, np.float32)
    state["MixerBlock_0/token_mixing/Dense_0/kernel"] = np.ones((64, 16), np.float32)
    np.savez(tmp_path / "broken.npz", **state)
    with pytest.raises(ValueError) as error:
        load_pretrained(tmp_path / "broken.npz", name="mixer_tiny")
    message = str(error.value)
    assert "missing keys (1): MixerBlock_1/LayerNorm_0/scale" in message
    assert "unexpected keys (1): MixerBlock_1/LayerNorm_2/scale" in message
    assert "MixerBlock_0/token_mixing/Dense_0/kernel: expected (64, 32), got (64, 16)" in message


def test_a_long_mismatch_list_is_capped(tmp_path):
    config = mixer_ref.get_config("mixer_tiny", num_blocks=12)
    save_checkpoint(interop.build_with_params(config, random_params(config), "flax"),
                    tmp_path / "deep.npz")
    with pytest.raises(ValueError, match=r"unexpected keys \(120\): .*\.\.\. and 110 more"
                       ) as error:
        load_pretrained(tmp_path / "deep.npz", name="mixer_tiny")
    assert len(str(error.value)) < 1500


def test_torch_load_is_called_with_weights_only(tmp_path, monkeypatch):
    save_checkpoint(random_model("resmlp_tiny", "torch"), tmp_path / "m.pth")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_pretrained(tmp_path / "m.pth")
    assert calls == [{"map_location": "cpu", "weights_only": True}]


class Payload:
    """Any object that is not a tensor: unpickling it could run code."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_pretrained(tmp_path / "evil.pth")
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="state_dict of tensors, got list"):
        load_pretrained(tmp_path / "list.pth")
    np.savez(tmp_path / "objects.npz", stem=np.array([{"kernel": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_pretrained(tmp_path / "objects.npz")


def test_only_checkpoint_files_and_workdirs_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="training workdir .*got a directory without model.json"):
        load_pretrained(tmp_path)
    with pytest.raises(ValueError, match="got 'model.ckpt'"):
        load_pretrained(tmp_path / "model.ckpt")


def test_load_pretrained_reads_a_training_workdir(tmp_path):
    from mixer_ref import train

    config = train.apply_overrides(train.get_recipe("smoke"),
                                   ["num_steps=2", "optim.warmup_steps=1", "checkpoint_every=2",
                                    "eval_every=0"])
    trained, _ = train.fit(config, str(tmp_path), progress=False)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(trained(jnp.asarray(x)))

    flax_model = mixer_ref.load_pretrained(tmp_path)
    np.testing.assert_array_equal(np.asarray(flax_model(jnp.asarray(x))), expected)
    torch_model = mixer_ref.load_pretrained(tmp_path, framework="torch", num_classes=3)
    assert torch_model.config.num_classes == 3
    assert not torch_model.head.weight.any() and not torch_model.head.bias.any()
