"""The CNN baseline: shapes per stage, zero head, input checks, and the training stack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixer_ref.baselines import ResNetTiny, he_normal
from mixer_ref.data import pipeline
from mixer_ref.train import apply_overrides, evaluate, get_recipe, make_optimizer, make_train_step
from mixer_ref.train.distributed import batch_sharding, make_mesh


def num_params(model) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_each_later_stage_halves_the_resolution_and_the_head_maps_to_classes():
    model = ResNetTiny(10, (8, 16, 32), rngs=nnx.Rngs(0))
    x = model.stem(jnp.zeros((2, 32, 32, 3)))
    sizes = []
    for stage in model.stages:
        x = stage(x)
        sizes.append(x.shape[1:])
    assert sizes == [(32, 32, 8), (16, 16, 16), (8, 8, 32)]
    assert model(jnp.zeros((2, 64, 64, 3))).shape == (2, 10)  # any size: global pooling


def test_a_stride_2_stem_halves_every_stage_and_keeps_the_parameters():
    full = ResNetTiny(10, (8, 16, 32), rngs=nnx.Rngs(0))
    half = ResNetTiny(10, (8, 16, 32), stem_stride=2, rngs=nnx.Rngs(0))
    x = half.stem(jnp.zeros((2, 28, 28, 3)))
    sizes = []
    for stage in half.stages:
        x = stage(x)
        sizes.append(x.shape[1:])
    assert sizes == [(14, 14, 8), (7, 7, 16), (4, 4, 32)]  # "SAME" padding rounds up
    assert num_params(half) == num_params(full)
    # Same weights, so the stride-2 stem is the stride-1 stem sampled at every other pixel:
    # "SAME" pads a 28-pixel side by 0 before and 1 after, so output i is centred on 2i + 1.
    images = jax.random.normal(jax.random.key(0), (2, 28, 28, 3))
    np.testing.assert_allclose(half.stem(images), full.stem(images)[:, 1::2, 1::2], atol=1e-5)
    with pytest.raises(ValueError, match="stem_stride must be 1 or 2, got 4"):
        ResNetTiny(10, stem_stride=4, rngs=nnx.Rngs(0))


def test_parameter_count_follows_the_widths():
    # stem 27·8; stage 1: 2 GN(8) + 2·9·8·8; stage 2: GN(8) + 9·8·16 + GN(16) + 9·16·16 +
    # 8·16 shortcut; stage 3 likewise 16 → 32; final GN(32); head 32·10 + 10.
    gn = lambda c: 2 * c  # noqa: E731
    expected = (27 * 8
                + 2 * gn(8) + 2 * 9 * 8 * 8
                + gn(8) + 9 * 8 * 16 + gn(16) + 9 * 16 * 16 + 8 * 16
                + gn(16) + 9 * 16 * 32 + gn(32) + 9 * 32 * 32 + 16 * 32
                + gn(32) + 32 * 10 + 10)
    assert num_params(ResNetTiny(10, (8, 16, 32), rngs=nnx.Rngs(0))) == expected


def test_he_normal_has_variance_two_over_fan_in():
    kernel = he_normal(jax.random.key(0), (3, 3, 64, 128))
    assert kernel.shape == (3, 3, 64, 128)
    assert float(kernel.mean()) == pytest.approx(0.0, abs=3e-3)
    assert float(kernel.var()) == pytest.approx(2 / (3 * 3 * 64), rel=0.02)


def test_the_zero_head_predicts_uniformly_at_initialisation():
    model = ResNetTiny(5, rngs=nnx.Rngs(0))
    images = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
    np.testing.assert_array_equal(model(images), np.zeros((3, 5), np.float32))


def test_bad_input_and_bad_widths_raise_with_the_expected_value():
    model = ResNetTiny(10, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\), got \(2, 3, 32, 32\)"):
        model(jnp.zeros((2, 3, 32, 32)))
    with pytest.raises(ValueError, match="floating-point"):
        model(jnp.zeros((2, 32, 32, 3), jnp.uint8))
    with pytest.raises(ValueError, match="multiples of 8"):
        ResNetTiny(10, (12, 24), rngs=nnx.Rngs(0))


def test_it_trains_with_the_train_step_and_evaluate_of_mixer_ref_train():
    config = apply_overrides(get_recipe("smoke"), ["num_steps=20", "optim.warmup_steps=1",
                                                   "optim.learning_rate=0.01"])
    data = pipeline.synthetic(64, 32, 10)
    model = ResNetTiny(10, (8, 16), rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_optimizer(config.optim, config.num_steps),
                              wrt=nnx.Param)
    mesh = make_mesh()
    step_fn = make_train_step(config, 10, mesh)
    batch = pipeline.global_batch({"images": data.images, "labels": data.labels},
                                  np.arange(32), batch_sharding(mesh))
    losses = [float(step_fn(model, optimizer, batch["images"], batch["labels"],
                            np.int32(step))["loss"]) for step in range(config.num_steps)]
    assert losses[0] == pytest.approx(np.log(10), rel=1e-5)  # zero head: uniform
    assert losses[-1] < losses[0] - 0.1  # it learns one batch
    result = evaluate(model, data)
    assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["loss"])
