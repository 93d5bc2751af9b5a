"""Checkpoint files: exact round trips, the released layouts, architecture inference, head
replacement, and errors that say what was expected and what was given."""

import dataclasses
import hashlib
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
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


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


# --- loading validates before it reads ----------------------------------------------------


def official_state(name="mixer_tiny"):
    config = mixer_ref.get_config(name)
    layout = interop.get_layout("official" if config.family == "mixer" else "torch",
                                config.family)
    return interop.from_canonical(random_params(config), layout)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", ["int8", "int64", "bool", "complex64"])
def test_non_floating_weights_are_refused(dtype, suffix, tmp_path):
    if suffix == ".safetensors" and dtype == "complex64":
        pytest.skip("safetensors has no complex dtype")
    state = official_state()
    state["head/bias"] = state["head/bias"].astype(dtype)
    write(tmp_path / f"m{suffix}", state)
    with pytest.raises(ValueError, match=f"m{suffix}: weight '.*bias' has dtype .*; expected "
                       "floating-point weights"):
        load_pretrained(tmp_path / f"m{suffix}")


@pytest.mark.parametrize("suffix", FORMATS)
def test_save_checkpoint_writes_a_sidecar_that_catches_a_flipped_byte(suffix, tmp_path):
    path = tmp_path / f"m{suffix}"
    save_checkpoint(random_model("mixer_tiny", "torch"), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / f"m{suffix}.sha256").read_text() == f"{digest}  m{suffix}\n"
    load_pretrained(path)
    data = bytearray(path.read_bytes())
    data[-len(data) // 3] ^= 0x01  # inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"m{suffix} is damaged: its SHA-256 is .*, but "
                       f"m{suffix}.sha256 records {digest}"):
        load_pretrained(path)


def test_a_flipped_byte_in_a_pth_without_sidecar_fails_its_crc(tmp_path):
    path = tmp_path / "m.pth"
    write(path, official_state("resmlp_tiny"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="m.pth is damaged: record .* fails its CRC-32"):
        load_pretrained(path)


def test_save_checkpoint_leaves_the_previous_file_whole_when_a_write_fails(tmp_path,
                                                                          monkeypatch):
    path = tmp_path / "m.npz"
    config = mixer_ref.get_config("mixer_tiny")
    old = interop.build_with_params(config, random_params(config, seed=1), "flax")
    save_checkpoint(old, path)
    before = path.read_bytes()

    def full_disk(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(interop.build_with_params(config, random_params(config, seed=2),
                                                  "flax"), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "m.npz.sha256"]
    assert_same_params(interop.flat_params(load_pretrained(path)), interop.flat_params(old))


def zip_bomb(path, state, key, shape):
    """An .npz of ``state`` whose ``key`` is a compressed array of zeros of ``shape``: a few
    KiB on disk, ``prod(shape) * 4`` bytes inflated."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in state.items():
            if name != key:
                with zf.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, value)
        with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": shape})
            zeros = bytes(1 << 20)
            for _ in range(math.prod(shape) * 4 // len(zeros)):
                f.write(zeros)


def test_an_npz_bomb_is_refused_from_its_headers_before_inflating(tmp_path):
    import tracemalloc

    state = official_state()
    zip_bomb(tmp_path / "bomb.npz", state, "head/kernel", (64, 1 << 20))  # 256 MiB inflated
    assert (tmp_path / "bomb.npz").stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb.npz .*does not fit the model:\n.*"
                           r"shape mismatches \(1\): head/bias"):
            load_pretrained(tmp_path / "bomb.npz", name="mixer_tiny")
        with pytest.raises(ValueError, match="declares 0.3 GiB .* the 0.1 GiB limit"):
            mixer_ref.checkpoints.read_state(tmp_path / "bomb.npz", max_bytes=1 << 27)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated"


def test_an_npz_member_must_declare_the_size_its_header_describes(tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (64, 64)})
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as zf:
        zf.writestr("stem/kernel.npy", header.getvalue() + bytes(100))
    with pytest.raises(ValueError, match=r"short.npz is damaged: member 'stem/kernel.npy' "
                       r"declares \d+ bytes, but its header describes \d+"):
        load_pretrained(tmp_path / "short.npz")


def test_every_unreadable_file_is_one_value_error_naming_it(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth: the file is empty"):
        load_pretrained(tmp_path / "empty.pth")
    np.savez(tmp_path / "numpy.npz", **official_state())
    (tmp_path / "numpy.npz").rename(tmp_path / "numpy.pth")
    with pytest.raises(ValueError, match="numpy.pth is a NumPy .npz archive, not the PyTorch "
                       "file its suffix says; rename it to end in .npz"):
        load_pretrained(tmp_path / "numpy.pth")
    for suffix in FORMATS:
        path = tmp_path / f"cut{suffix}"
        write(path, official_state())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(ValueError, match=f"cut{suffix}"):
            load_pretrained(path)
    (tmp_path / "noise.safetensors").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="noise.safetensors: its first bytes"):
        load_pretrained(tmp_path / "noise.safetensors")


@pytest.mark.parametrize("num_classes", [-3, 0, 2.5, "10", True])
def test_num_classes_must_be_a_positive_integer(num_classes, tmp_path):
    save_checkpoint(random_model("mixer_tiny", "flax"), tmp_path / "m.npz")
    with pytest.raises(ValueError, match=f"num_classes must be a positive integer, got "
                       f"{num_classes!r}"):
        load_pretrained(tmp_path / "m.npz", num_classes=num_classes)
