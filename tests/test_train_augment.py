"""Data order and on-device augmentation are pure functions of (seed, step)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixer_ref.data import augment, pipeline


def test_batches_are_a_function_of_seed_and_step_and_cover_each_epoch_once():
    n, b = 100, 20
    epoch0 = np.concatenate([pipeline.global_batch_indices(n, b, 7, t) for t in range(5)])
    assert sorted(epoch0) == list(range(n))
    again = pipeline.global_batch_indices(n, b, 7, 3)
    np.testing.assert_array_equal(again, epoch0[60:80])
    epoch1 = np.concatenate([pipeline.global_batch_indices(n, b, 7, t) for t in range(5, 10)])
    assert sorted(epoch1) == list(range(n)) and not np.array_equal(epoch0, epoch1)
    other_seed = pipeline.global_batch_indices(n, b, 8, 0)
    assert not np.array_equal(other_seed, epoch0[:20])


def test_processes_split_the_global_batch_into_contiguous_shares():
    indices = np.arange(12) * 10
    shares = [pipeline.process_slice(indices, i, 3) for i in range(3)]
    np.testing.assert_array_equal(np.concatenate(shares), indices)
    with pytest.raises(ValueError, match="divide evenly"):
        pipeline.process_slice(indices, 0, 5)
    with pytest.raises(ValueError, match="larger than the dataset"):
        pipeline.global_batch_indices(10, 11, 0, 0)


def test_eval_batches_visit_every_example_once():
    seen = [i for idx, mask in pipeline.eval_batches(10, 4) for i in idx[mask]]
    assert seen == list(range(10))


def _images(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(0, 1, (n, size, size, 3)), jnp.float32)


STRONG = dict(crop="resized", flip=True, randaug_num_ops=2, randaug_magnitude=9)


@pytest.fixture(scope="module")
def augment_fn():
    return jax.jit(lambda key, x: augment.augment(key, x, **STRONG))


def test_augmentation_is_deterministic_by_key(augment_fn):
    x = _images()
    a = augment_fn(jax.random.key(0), x)
    b = augment_fn(jax.random.key(0), x)
    c = augment_fn(jax.random.key(1), x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1


def test_the_step_key_changes_the_augmentation_from_step_to_step(augment_fn):
    x = _images()
    key = jax.random.key(0)
    a = augment_fn(jax.random.fold_in(key, 1), x)
    b = augment_fn(jax.random.fold_in(key, 2), x)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("op", augment.RAND_AUGMENT_OPS, ids=lambda op: op.__name__)
def test_every_rand_augment_op_keeps_shape_and_range(op):
    x = _images(n=1)[0]
    y = op(x, level=1.0, sign=-1.0)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert (op is augment._identity) == bool(jnp.all(y == x))


def test_pad_crop_and_flip_move_pixels_without_changing_them():
    x = _images()
    cropped = augment.random_crop(jax.random.key(0), x, padding=0)
    np.testing.assert_array_equal(cropped, x)
    flipped = augment.random_flip(jax.random.key(0), x)
    for original, out in zip(x, flipped, strict=True):
        assert jnp.array_equal(out, original) or jnp.array_equal(out, original[:, ::-1])


@pytest.mark.parametrize("mixup_alpha, cutmix_alpha", [(0.5, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixing_gives_soft_targets_that_sum_to_one(mixup_alpha, cutmix_alpha):
    x = _images()
    targets = jax.nn.one_hot(jnp.arange(8) % 3, 3)
    mixed, soft = augment.mix(jax.random.key(0), x, targets, mixup_alpha, cutmix_alpha)
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    assert mixed.shape == x.shape and not np.allclose(mixed, x)
    again = augment.mix(jax.random.key(0), x, targets, mixup_alpha, cutmix_alpha)
    np.testing.assert_array_equal(again[0], mixed)


def test_mixup_mixes_images_and_targets_with_the_same_weight():
    x = _images()
    targets = jax.nn.one_hot(jnp.arange(8), 8)
    mixed, soft = augment.mixup(jax.random.key(3), x, targets, alpha=0.5)
    lam = float(soft[0, 0])
    np.testing.assert_allclose(mixed[0], lam * x[0] + (1 - lam) * x[7], rtol=1e-5)
