"""Recipes, schedules and optimizers follow the papers (Mixer Sec. 3, Supp. C; ResMLP Sec. 4)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mixer_ref.train import optim, recipes
from mixer_ref.train.recipes import OptimSpec


def test_linear_schedule_warms_up_to_the_peak_then_decays_to_zero():
    spec = OptimSpec("adam", learning_rate=1e-3, schedule="linear", warmup_steps=10)
    lr = optim.make_schedule(spec, num_steps=110)
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(float(lr(5)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(lr(10)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(lr(60)), 5e-4, rtol=1e-6)
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-12)
    rising = [float(lr(t)) for t in range(11)]
    falling = [float(lr(t)) for t in range(10, 111)]
    assert np.all(np.diff(rising) > 0) and np.all(np.diff(falling) < 0)


def test_cosine_schedule_has_a_linear_warmup_and_its_midpoint_at_half_the_peak():
    spec = OptimSpec("sgd", learning_rate=0.03, schedule="cosine", warmup_steps=500)
    lr = optim.make_schedule(spec, num_steps=10_500)
    np.testing.assert_allclose(float(lr(250)), 0.015, rtol=1e-6)
    np.testing.assert_allclose(float(lr(500)), 0.03, rtol=1e-6)
    np.testing.assert_allclose(float(lr(5500)), 0.015, rtol=1e-5)
    assert float(lr(10_500)) == pytest.approx(0.0, abs=1e-9)


def _one_update(spec, grads, params, num_steps=10):
    tx = optim.make_optimizer(spec, num_steps)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_gradients_are_clipped_at_global_norm_one():
    params = {"kernel": jnp.zeros((2, 2))}
    grads = {"kernel": jnp.full((2, 2), 10.0)}  # global norm 20
    spec = OptimSpec("sgd", learning_rate=1.0, schedule="cosine", momentum=0.0)
    clipped = _one_update(spec, grads, params)  # no warmup: lr(0) = 1
    assert optax.tree.norm(clipped) == pytest.approx(1.0, rel=1e-6)
    unclipped = dataclasses.replace(spec, grad_clip_norm=0.0)
    updates = _one_update(unclipped, grads, params)
    assert optax.tree.norm(updates) == pytest.approx(20.0, rel=1e-6)


def test_fine_tuning_has_no_weight_decay():
    spec = recipes.get_recipe("mixer_finetune_cifar10").optim
    assert (spec.optimizer, spec.momentum, spec.weight_decay, spec.grad_clip_norm) == (
        "sgd", 0.9, 0.0, 1.0)
    params = {"kernel": jnp.ones((2, 2))}
    updates = _one_update(dataclasses.replace(spec, warmup_steps=0), {"kernel": jnp.zeros(
        (2, 2))}, params)
    assert float(jnp.abs(updates["kernel"]).max()) == 0.0  # zero gradient, zero update
    with pytest.raises(ValueError, match="no weight decay"):
        optim.make_optimizer(dataclasses.replace(spec, weight_decay=0.1), 10)


def test_weight_decay_is_decoupled_and_spares_biases():
    spec = OptimSpec("adam", learning_rate=0.5, warmup_steps=0, weight_decay=0.1,
                     grad_clip_norm=0.0)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates = _one_update(spec, zeros, params)
    np.testing.assert_allclose(updates["kernel"], -0.5 * 0.1 * params["kernel"])
    np.testing.assert_allclose(updates["bias"], 0.0)


def test_adam_uses_the_papers_betas():
    spec = recipes.get_recipe("mixer_imagenet").optim
    assert (spec.optimizer, spec.b1, spec.b2) == ("adam", 0.9, 0.999)
    # One Adam step from zero moments moves every coordinate by lr (bias-corrected).
    spec = dataclasses.replace(spec, weight_decay=0.0, warmup_steps=0, grad_clip_norm=0.0,
                               learning_rate=1e-3)
    grads = {"kernel": jnp.array([[3.0, -0.5]])}
    updates = _one_update(spec, grads, {"kernel": jnp.zeros((1, 2))})
    np.testing.assert_allclose(updates["kernel"], [[-1e-3, 1e-3]], rtol=1e-4)


def test_the_papers_recipes():
    mixer = recipes.get_recipe("mixer_imagenet")
    assert (mixer.batch_size, mixer.optim.learning_rate, mixer.optim.weight_decay,
            mixer.optim.warmup_steps, mixer.optim.schedule) == (4096, 1e-3, 0.1, 10_000, "linear")
    assert (mixer.augment.randaug_magnitude, mixer.augment.mixup_alpha,
            mixer.model.stoch_depth) == (15, 0.5, 0.1)
    resmlp = recipes.get_recipe("resmlp_imagenet")
    assert (resmlp.optim.optimizer, resmlp.optim.learning_rate, resmlp.optim.weight_decay,
            resmlp.optim.schedule, resmlp.label_smoothing, resmlp.batch_size) == (
        "lamb", 5e-3, 0.2, "cosine", 0.1, 2048)
    assert resmlp.model.stoch_depth == 0.05
    for name in recipes.list_recipes():
        recipes.get_recipe(name).validate()


def test_the_sweep_recipe_is_the_chapter_recipe_without_augmentation():
    """Chapter 05's sweep recipe changes only augmentation, learning rate and budget."""
    base, sweep = (recipes.get_recipe(n) for n in ("fashion_mnist_mixer", "fashion_mnist_sweep"))
    assert sweep.augment == recipes.AugmentSpec()  # every augmentation off
    assert (sweep.optim.learning_rate, sweep.num_steps, sweep.batch_size) == (1e-2, 4000, 128)
    same = dataclasses.replace(sweep, augment=base.augment, optim=base.optim,
                               num_steps=base.num_steps, log_every=base.log_every,
                               eval_every=base.eval_every,
                               checkpoint_every=base.checkpoint_every)
    assert same == base
    assert dataclasses.replace(sweep.optim, learning_rate=base.optim.learning_rate) == base.optim


def test_overrides_are_typed_and_nested():
    config = recipes.apply_overrides(recipes.get_recipe("smoke"), [
        "optim.learning_rate=3e-3", "num_steps=50", "augment.flip=true",
        "model.stoch_depth=0.1", "model.pretrained=/tmp/run", "optim.warmup_steps=1e1"])
    assert config.optim.learning_rate == 3e-3 and config.num_steps == 50
    assert config.augment.flip is True and config.model.stoch_depth == 0.1
    assert config.model.pretrained == "/tmp/run" and config.optim.warmup_steps == 10


@pytest.mark.parametrize("override, message", [
    ("optim.lr=1", "Unknown config key 'optim.lr'.*optim.learning_rate"),
    ("num_step=3", "Did you mean num_steps"),
    ("num_steps=2.5", "num_steps expects int"),
    ("augment.flip=maybe", "expects a bool"),
    ("optim=3", "Unknown config key 'optim'"),
    ("optim.optimizer=rmsprop", "optim.optimizer must be one of"),
    ("num_steps", "key=value"),
])
def test_bad_overrides_say_what_is_valid(override, message):
    with pytest.raises(ValueError, match=message):
        recipes.apply_overrides(recipes.get_recipe("smoke"), [override])


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known recipes: smoke"):
        recipes.load_config("smok")


def test_a_json_file_round_trips_and_can_extend_a_named_recipe(tmp_path):
    config = recipes.apply_overrides(recipes.get_recipe("cifar10_resmlp"), ["seed=3"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(recipes.to_dict(config)))
    assert recipes.load_config(str(path)) == config
    path.write_text(json.dumps({"base": "smoke", "optim": {"learning_rate": 0.01}}))
    loaded = recipes.load_config(str(path))
    assert loaded == dataclasses.replace(
        recipes.SMOKE, optim=dataclasses.replace(recipes.SMOKE.optim, learning_rate=0.01))


@pytest.mark.parametrize("override, message", [
    ("optim.learning_rate=nan", r"optim.learning_rate must lie in \(0.0, ∞\), got nan"),
    ("optim.learning_rate=-1", r"optim.learning_rate must lie in \(0.0, ∞\), got -1.0"),
    ("optim.learning_rate=0", r"optim.learning_rate must lie in \(0.0, ∞\), got 0.0"),
    ("label_smoothing=5", r"label_smoothing must lie in \[0.0, 1.0\), got 5.0"),
    ("label_smoothing=1", r"label_smoothing must lie in \[0.0, 1.0\), got 1.0"),
    ("augment.mixup_alpha=-1", r"augment.mixup_alpha must lie in \[0.0, ∞\), got -1.0"),
    ("augment.cutmix_alpha=inf", r"augment.cutmix_alpha must lie in \[0.0, ∞\), got inf"),
    ("eval_batch_size=0", r"eval_batch_size must lie in \[1, ∞\), got 0"),
    ("batch_size=-8", r"batch_size must lie in \[1, ∞\), got -8"),
    ("seed=-1", r"seed must lie in \[0, 4294967295\], got -1"),
    ("augment.crop_padding=-4", r"augment.crop_padding must lie in \[0, ∞\), got -4"),
    ("optim.b2=1", r"optim.b2 must lie in \[0.0, 1.0\), got 1.0"),
    ("optim.weight_decay=-0.1", r"optim.weight_decay must lie in \[0.0, ∞\), got -0.1"),
    ("model.stoch_depth=1.5", r"model.stoch_depth must lie in \[0.0, 1.0\), got 1.5"),
    ("model.image_size=0", r"model.image_size must lie in \[1, ∞\), got 0"),
    ("eval_every=-1", r"eval_every must lie in \[0, ∞\), got -1"),
])
def test_out_of_range_settings_are_refused_at_parse_time(override, message):
    with pytest.raises(ValueError, match=message):
        recipes.apply_overrides(recipes.get_recipe("smoke"), [override])


def test_a_json_config_is_range_checked_too(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"base": "smoke", "optim": {"learning_rate": -1}}))
    with pytest.raises(ValueError, match="optim.learning_rate must lie in"):
        recipes.load_config(str(path))
