"""The model registry: the papers' variants, paper spellings and clear errors."""

import pytest

import mixer_ref
from mixer_ref.configs import MixerConfig, ResMLPConfig, layerscale_init_for_depth

TABLE_1 = {  # name: (blocks, patch, hidden C, tokens S, D_C, D_S), Tolstikhin et al. Table 1
    "mixer_s32": (8, 32, 512, 49, 2048, 256),
    "mixer_s16": (8, 16, 512, 196, 2048, 256),
    "mixer_b32": (12, 32, 768, 49, 3072, 384),
    "mixer_b16": (12, 16, 768, 196, 3072, 384),
    "mixer_l32": (24, 32, 1024, 49, 4096, 512),
    "mixer_l16": (24, 16, 1024, 196, 4096, 512),
    "mixer_h14": (32, 14, 1280, 256, 5120, 640),
}


@pytest.mark.parametrize("name", TABLE_1)
def test_mixer_variants_match_table_1(name):
    c = mixer_ref.get_config(name)
    assert isinstance(c, MixerConfig)
    got = (c.num_blocks, c.patch_size, c.hidden_dim, c.num_tokens, c.channels_mlp_dim,
           c.tokens_mlp_dim)
    assert got == TABLE_1[name]
    assert c.image_size == 224


@pytest.mark.parametrize("name, depth, dim, patch, eps", [
    ("resmlp_s12", 12, 384, 16, 0.1),
    ("resmlp_s24", 24, 384, 16, 1e-5),
    ("resmlp_s36", 36, 384, 16, 1e-6),
    ("resmlp_b24", 24, 768, 16, 1e-5),
    ("resmlp_b24_8", 24, 768, 8, 1e-6),  # deit's resmlpB_24 uses init_scale=1e-6
])
def test_resmlp_variants(name, depth, dim, patch, eps):
    c = mixer_ref.get_config(name)
    assert isinstance(c, ResMLPConfig)
    assert (c.num_blocks, c.hidden_dim, c.patch_size, c.mlp_ratio) == (depth, dim, patch, 4)
    assert c.layerscale_init == eps


@pytest.mark.parametrize("depth, eps", [(1, 0.1), (12, 0.1), (13, 1e-5), (24, 1e-5),
                                        (36, 1e-6), (48, 1e-6)])
def test_layerscale_init_by_depth(depth, eps):
    assert layerscale_init_for_depth(depth) == eps


@pytest.mark.parametrize("spelling, name", [
    ("Mixer-B/16", "mixer_b16"), ("mixer-s/32", "mixer_s32"), ("Mixer-H/14", "mixer_h14"),
    ("ResMLP-S12", "resmlp_s12"), ("ResMLP-B24/8", "resmlp_b24_8"), ("resmlp_s36", "resmlp_s36"),
    ("ResMLP-B24", "resmlp_b24"),
])
def test_paper_spellings_resolve(spelling, name):
    assert mixer_ref.get_config(spelling).name == name


def test_list_models_covers_papers_and_course():
    names = mixer_ref.list_models()
    assert set(TABLE_1) <= set(names)
    assert {"resmlp_s12", "resmlp_s24", "resmlp_s36", "resmlp_b24", "resmlp_b24_8"} <= set(names)
    course = [mixer_ref.get_config(n) for n in names if "course" in n]
    assert {c.image_size for c in course} == {32, 64}


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown model 'mixer_b17'.*Close matches: mixer_b16"):
        mixer_ref.get_config("mixer_b17")


def test_overrides_and_unknown_fields():
    c = mixer_ref.get_config("mixer_b16", num_classes=10, image_size=384)
    assert (c.num_classes, c.num_tokens) == (10, 576)
    with pytest.raises(ValueError, match=r"Unknown config field\(s\) \['mlp_ratio'\]"):
        mixer_ref.get_config("mixer_b16", mlp_ratio=4)


def test_image_size_must_be_divisible_by_patch():
    with pytest.raises(ValueError, match="expected a multiple of 16, got 200"):
        mixer_ref.get_config("mixer_b16", image_size=200)


def test_stochastic_depth_rises_linearly_for_mixer_and_is_constant_for_resmlp():
    rates = mixer_ref.get_config("mixer_b16", stoch_depth=0.1).drop_path_rates()
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1) and len(rates) == 12
    assert all(b - a == pytest.approx(0.1 / 11) for a, b in zip(rates, rates[1:], strict=False))
    assert mixer_ref.get_config("resmlp_s12", stoch_depth=0.05).drop_path_rates() == [0.05] * 12
