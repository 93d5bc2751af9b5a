"""Analytic FLOPs against the ResMLP paper's Table 3 (whose "FLOPs" are multiply-adds)."""

import pytest

import mixer_ref
from mixer_ref.flops import flops_per_image, macs_per_image


@pytest.mark.parametrize("name, gmacs", [("resmlp_s12", 3.0), ("resmlp_s24", 6.0),
                                         ("resmlp_s36", 8.9), ("resmlp_b24", 23.0),
                                         ("resmlp_b24_8", 100.2)])
def test_resmlp_macs_match_table_3(name, gmacs):
    macs = sum(macs_per_image(mixer_ref.get_config(name)).values())
    assert macs / 1e9 == pytest.approx(gmacs, abs=0.05)


def test_mixer_token_mixing_is_linear_in_tokens():
    small = mixer_ref.get_config("mixer_b16")
    large = mixer_ref.get_config("mixer_b16", image_size=448)  # 4× the tokens, same D_S
    ratio = macs_per_image(large)["token_mixing"] / macs_per_image(small)["token_mixing"]
    assert ratio == 4


def test_mixer_b16_by_hand():
    c = mixer_ref.get_config("mixer_b16")
    s, h, ds, dc = 196, 768, 384, 3072
    per_block = 2 * s * ds * h + 2 * s * h * dc
    expected = s * 16 * 16 * 3 * h + 12 * per_block + h * 1000
    assert flops_per_image(c) == 2 * expected
    assert flops_per_image(c, train=True) == 6 * expected
