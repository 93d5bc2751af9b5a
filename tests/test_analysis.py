"""mixer_ref.analysis: permutations, untied token mixing, Fig. 5 pairing, Toeplitz share."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from mixer_ref import analysis, count_params, get_config
from mixer_ref.data import ArrayDataset

jax.config.update("jax_default_matmul_precision", "highest")

TINY = get_config("mixer_tiny", image_size=16, num_blocks=2, hidden_dim=16,
                  tokens_mlp_dim=8, channels_mlp_dim=32, num_classes=5)


def noisy(model, seed=0):
    """``model`` with noise on every parameter (zero biases and head would hide mistakes)."""
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    nnx.update(model, treedef.unflatten(
        [v + 0.3 * jax.random.normal(k, v.shape) for k, v in zip(keys, leaves, strict=True)]))
    return model


# --- permutations ----------------------------------------------------------------------------

def test_shuffle_images_moves_pixels_by_order():
    images = np.arange(2 * 3 * 3 * 2).reshape(2, 3, 3, 2)
    order = np.array([8, 7, 6, 5, 4, 3, 2, 1, 0])
    out = analysis.shuffle_images(images, order)
    np.testing.assert_array_equal(out, images[:, ::-1, ::-1])  # reversing flat order = 180°
    with pytest.raises(ValueError, match="permutation of the 9 pixel positions"):
        analysis.shuffle_images(images, np.zeros(9, int))


def test_patch_shuffle_moves_whole_patches_and_the_same_pixels_in_each():
    shuffle = analysis.PatchShuffle.random(8, 4, seed=0)
    image = np.random.default_rng(0).integers(0, 255, (1, 8, 8, 1))
    out = analysis.shuffle_images(image, shuffle.order())[0, ..., 0]
    patches = image[0, ..., 0].reshape(2, 4, 2, 4).transpose(0, 2, 1, 3).reshape(4, 16)
    for j in range(4):
        r, c = divmod(j, 2)
        got = out[4 * r:4 * r + 4, 4 * c:4 * c + 4].ravel()
        np.testing.assert_array_equal(got, patches[shuffle.tokens[j]][shuffle.pixels])
    assert sorted(shuffle.order()) == list(range(64))


def test_global_shuffle_is_a_seeded_permutation():
    a, b = analysis.global_shuffle(28, 1), analysis.global_shuffle(28, 1)
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(784)) and (a != np.arange(784)).any()


def test_shuffle_dataset_keeps_labels():
    data = ArrayDataset(np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
                        np.array([0, 1], np.int32), 2, ("a", "b"), "toy")
    out = analysis.shuffle_dataset(data, analysis.global_shuffle(4, 0))
    np.testing.assert_array_equal(out.labels, data.labels)
    assert not np.array_equal(out.images, data.images)


def test_absorbed_model_on_original_images_equals_model_on_shuffled_images():
    model = noisy(analysis.mixer_maker(TINY)(5, rngs=nnx.Rngs(0)))
    shuffle = analysis.PatchShuffle.random(16, 4, seed=3)
    images = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3))
    shuffled = analysis.shuffle_images(np.asarray(images), shuffle.order())
    absorbed = analysis.absorb_patch_shuffle(model, shuffle)
    np.testing.assert_allclose(absorbed(images), model(shuffled), rtol=1e-5, atol=1e-5)
    # and the property is not trivial: the unabsorbed model sees a different input
    assert not np.allclose(model(images), model(shuffled), atol=1e-2)
    with pytest.raises(ValueError, match="the shuffle is for 32"):
        analysis.absorb_patch_shuffle(model, analysis.PatchShuffle.random(32, 4, 0))


# --- untied token mixing ---------------------------------------------------------------------

def test_untied_token_mixing_has_c_times_the_parameters():
    tied = analysis.mixer_maker(TINY)(5, rngs=nnx.Rngs(0))
    untied = analysis.mixer_maker(TINY, untied=True)(5, rngs=nnx.Rngs(0))
    per_block = count_params(tied.blocks[0].token_mixing)
    assert per_block == 2 * TINY.num_tokens * TINY.tokens_mlp_dim + TINY.num_tokens + \
        TINY.tokens_mlp_dim
    untied_block = sum(p.size for p in jax.tree.leaves(nnx.state(untied.blocks[0].token_mixing,
                                                                 nnx.Param)))
    assert untied_block == TINY.hidden_dim * per_block
    assert count_params(untied) - count_params(tied) == \
        TINY.num_blocks * (TINY.hidden_dim - 1) * per_block


def test_untied_with_equal_copies_equals_tied():
    tied = noisy(analysis.mixer_maker(TINY)(5, rngs=nnx.Rngs(0)))
    untied = analysis.mixer_maker(TINY, untied=True)(5, rngs=nnx.Rngs(0))
    nnx.update(untied, nnx.state(tied, nnx.Not(nnx.PathContains("token_mixing"))))
    c = TINY.hidden_dim
    for a, b in zip(untied.blocks, tied.blocks, strict=True):
        mlp = b.token_mixing
        for name, param in (("kernel1", mlp.fc1.kernel), ("bias1", mlp.fc1.bias),
                            ("kernel2", mlp.fc2.kernel), ("bias2", mlp.fc2.bias)):
            getattr(a.token_mixing, name)[...] = np.broadcast_to(param[...], (c, *param.shape))
    images = jax.random.uniform(jax.random.key(2), (2, 16, 16, 3))
    np.testing.assert_allclose(untied(images), tied(images), rtol=1e-5, atol=1e-5)
    # one channel's MLP changed changes the output: the channels are really separate
    untied.blocks[0].token_mixing.kernel1[...] = untied.blocks[0].token_mixing.kernel1[...].at[
        3].add(1.0)
    assert not np.allclose(untied(images), tied(images), atol=1e-3)


def test_untied_init_matches_the_tied_scale():
    untied = analysis.mixer_maker(get_config("mixer_tiny"), untied=True)(10, rngs=nnx.Rngs(0))
    k1 = np.asarray(untied.blocks[0].token_mixing.kernel1[...])  # (C, S, D_S), fan-in S = 64
    assert k1.shape == (64, 64, 32)
    assert abs(k1.std() - 64**-0.5) < 0.05 * 64**-0.5


def test_makers_build_any_depth_of_either_family():
    deeper = dataclasses.replace(TINY, num_blocks=4)
    model = analysis.mixer_maker(deeper)(7, rngs=nnx.Rngs(0))
    assert len(model.blocks) == 4 and model.head.kernel.shape == (16, 7)
    resmlp = get_config("resmlp_tiny", image_size=28, num_blocks=3)
    model = analysis.model_maker(resmlp)(7, rngs=nnx.Rngs(0))
    assert type(model).__name__ == "ResMLP" and len(model.blocks) == 3
    assert model.blocks[0].linear_tokens.kernel.shape == (49, 49)
    with pytest.raises(ValueError, match="expected a Mixer config"):
        analysis.mixer_maker(resmlp)


# --- Fig. 5: opposite phase and frequency ----------------------------------------------------

def test_spatial_frequency_of_a_cosine():
    g = 8
    r = np.arange(g)
    for f in (1, 2, 3):
        wave = np.cos(2 * np.pi * f * r / g)[:, None] * np.ones(g)
        assert analysis.spatial_frequency(wave) == pytest.approx(f)
    assert analysis.spatial_frequency(np.ones((g, g))) == 0.0


def test_opposite_phase_pairs_finds_negated_units_and_sorts_by_frequency():
    g, rng = 6, np.random.default_rng(0)
    r = np.arange(g)
    low = np.cos(2 * np.pi * r / g)[:, None] * np.ones(g)
    high = np.cos(2 * np.pi * 3 * r / g)[:, None] * np.ones(g)
    units = np.stack([high, low, -high + 0.01 * rng.normal(size=(g, g)),
                      -low + 0.01 * rng.normal(size=(g, g)), rng.normal(size=(g, g))])
    pairs = analysis.opposite_phase_pairs(units.reshape(5, g * g))
    assert pairs == [(1, 3), (0, 2)]  # low frequency first; unit 4 is left out
    with pytest.raises(ValueError, match="square grid"):
        analysis.opposite_phase_pairs(np.ones((2, 5)))


# --- Toeplitz share ---------------------------------------------------------------------------

def convolution_matrix(kernel, g):
    """The S × S matrix of a 2-D 'same' convolution with zero padding on a g × g grid."""
    k = kernel.shape[0] // 2
    a = np.zeros((g * g, g * g))
    for i in range(g * g):
        r, c = divmod(i, g)
        for dr in range(-k, k + 1):
            for dc in range(-k, k + 1):
                if 0 <= r + dr < g and 0 <= c + dc < g:
                    a[i, (r + dr) * g + c + dc] = kernel[dr + k, dc + k]
    return a


def test_a_convolution_scores_one_and_its_kernel_is_recovered():
    g, kernel = 5, np.random.default_rng(0).normal(size=(3, 3))
    a = convolution_matrix(kernel, g)
    assert analysis.toeplitz_share(a) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(analysis.toeplitz_projection(a), a, atol=1e-12)
    full = analysis.convolution_kernel(a)
    assert full.shape == (9, 9)
    np.testing.assert_allclose(full[3:6, 3:6], kernel, atol=1e-12)
    assert analysis.toeplitz_share(np.eye(g * g)) == pytest.approx(1.0)


def test_toeplitz_projection_is_an_orthogonal_projection():
    a = np.random.default_rng(1).normal(size=(16, 16))
    p = analysis.toeplitz_projection(a)
    np.testing.assert_allclose(analysis.toeplitz_projection(p), p, atol=1e-12)  # idempotent
    b = np.random.default_rng(2).normal(size=(16, 16))
    # self-adjoint: <P a, b> = <a, P b>, so the residual is orthogonal to the subspace
    assert np.sum(p * b) == pytest.approx(np.sum(a * analysis.toeplitz_projection(b)))
    assert np.sum((a - p) * p) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("g", [3, 4, 7])
def test_random_matrix_scores_the_subspace_dimension_share(g):
    # For i.i.d. Gaussian A, ‖PA‖²/‖A‖² ~ Beta(K/2, (N − K)/2): mean K/N with K = (2g − 1)²
    # offsets and N = g⁴ entries; the mean of 400 draws lies within 5 standard errors.
    k, n = (2 * g - 1) ** 2, g**4
    rng = np.random.default_rng(g)
    shares = [analysis.toeplitz_share(rng.normal(size=(g * g, g * g))) for _ in range(400)]
    sd = np.sqrt(k * (n - k) / (n**2 * (n / 2 + 1) * 2)) / np.sqrt(400)
    assert np.mean(shares) == pytest.approx(k / n, abs=5 * sd)
    assert k / n < 0.6


def test_convolution_kernel_rejects_non_grid_matrices():
    with pytest.raises(ValueError, match="square grid"):
        analysis.convolution_kernel(np.ones((5, 5)))


# --- sparsity --------------------------------------------------------------------------------

def test_relative_magnitudes_and_small_weight_share():
    w = np.array([[-4.0, 0.1], [2.0, 0.0]])
    np.testing.assert_allclose(analysis.relative_magnitudes(w), [1.0, 0.025, 0.5, 0.0])
    assert analysis.small_weight_share(w) == 0.5
    assert analysis.small_weight_share(w, threshold=0.6) == 0.75
    with pytest.raises(ValueError, match="nonzero"):
        analysis.relative_magnitudes(np.zeros(3))
