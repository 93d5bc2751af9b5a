"""Hard-label distillation (DeiT, on ResMLP's single head): the loss, its gradient,
and the train step, which is ordinary training when the teacher agrees with the labels."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mixer_ref.ablations import variant
from mixer_ref.data import ArrayDataset, augment, pipeline
from mixer_ref.distill import fit_distilled, hard_distillation_loss, make_distill_train_step
from mixer_ref.train import apply_overrides, get_recipe, make_optimizer, make_train_step
from mixer_ref.train.distributed import batch_sharding, make_mesh

NUM_CLASSES, SIZE = 4, 8


def test_loss_is_half_true_label_and_half_teacher_label_cross_entropy():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(6, NUM_CLASSES)).astype(np.float32)
    teacher = rng.normal(size=(6, NUM_CLASSES)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, 6)
    log_p = student - np.log(np.exp(student).sum(-1, keepdims=True))
    by_hand = -(0.5 * log_p[np.arange(6), labels]
                + 0.5 * log_p[np.arange(6), teacher.argmax(-1)]).mean()
    targets = jax.nn.one_hot(labels, NUM_CLASSES)
    assert float(hard_distillation_loss(student, teacher, targets)) == pytest.approx(
        by_hand, rel=1e-6)


def test_a_teacher_that_agrees_with_the_labels_gives_the_plain_cross_entropy():
    student = jax.random.normal(jax.random.key(0), (5, NUM_CLASSES))
    labels = jnp.array([0, 1, 2, 3, 1])
    targets = jax.nn.one_hot(labels, NUM_CLASSES)
    plain = optax.softmax_cross_entropy(student, targets).mean()
    np.testing.assert_allclose(hard_distillation_loss(student, 10 * targets, targets), plain,
                               rtol=1e-6)


def test_no_gradient_flows_into_the_teacher_and_shapes_are_checked():
    student = jax.random.normal(jax.random.key(0), (3, NUM_CLASSES))
    teacher = jax.random.normal(jax.random.key(1), (3, NUM_CLASSES))
    targets = jax.nn.one_hot(jnp.array([0, 1, 2]), NUM_CLASSES)
    grad = jax.grad(lambda t: hard_distillation_loss(student, t, targets))(teacher)
    np.testing.assert_array_equal(grad, np.zeros_like(grad))
    with pytest.raises(ValueError, match=r"one shape .*\(3, 4\), \(3, 3\)"):
        hard_distillation_loss(student, teacher[:, :3], targets)


class OracleTeacher(nnx.Module):
    """Reads the class off an image whose pixels all equal the class's grey level."""

    def __init__(self, levels: np.ndarray):
        grey = augment.normalize(augment.to_float(jnp.asarray(levels, jnp.uint8)))
        self.centers = nnx.Variable(grey)

    def __call__(self, images):
        mean = images.mean(axis=(1, 2, 3))[:, None]
        return -100.0 * (mean - self.centers[...]) ** 2


LEVELS = np.array([20, 90, 160, 230])


def grey_dataset(n: int = 64) -> ArrayDataset:
    labels = np.arange(n, dtype=np.int32) % NUM_CLASSES
    images = np.broadcast_to(LEVELS[labels].astype(np.uint8)[:, None, None, None],
                             (n, SIZE, SIZE, 3)).copy()
    return ArrayDataset(images, labels, NUM_CLASSES, tuple("abcd"), "grey")


def config():
    return apply_overrides(get_recipe("smoke"), ["batch_size=8", "num_steps=3",
                                                 "optim.warmup_steps=1", "log_every=3",
                                                 "eval_every=3"])


def make_student(num_classes, *, dtype=None, rngs):
    return variant("resmlp_tiny", image_size=SIZE, patch_size=4)(num_classes, dtype=dtype,
                                                                  rngs=rngs)


def one_step(step_fn, with_teacher: bool):
    cfg, mesh = config(), make_mesh()
    data = grey_dataset()
    model = make_student(NUM_CLASSES, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_optimizer(cfg.optim, cfg.num_steps), wrt=nnx.Param)
    indices = pipeline.global_batch_indices(len(data), cfg.batch_size, cfg.seed, 0)
    batch = pipeline.global_batch({"images": data.images, "labels": data.labels}, indices,
                                  batch_sharding(mesh))
    teacher = (OracleTeacher(LEVELS),) if with_teacher else ()
    metrics = step_fn(cfg, NUM_CLASSES, mesh)(model, optimizer, *teacher, batch["images"],
                                              batch["labels"], np.int32(0))
    return metrics, nnx.state(model, nnx.Param)


def test_with_a_teacher_that_agrees_with_the_labels_the_step_is_the_plain_step():
    plain, plain_params = one_step(make_train_step, with_teacher=False)
    distilled, distilled_params = one_step(make_distill_train_step, with_teacher=True)
    assert float(distilled["agreement"]) == 1.0
    np.testing.assert_allclose(distilled["loss"], plain["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(distilled_params), jax.tree.leaves(plain_params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_fit_distilled_logs_train_and_eval_records_and_leaves_the_teacher_alone(tmp_path):
    data, teacher = grey_dataset(), OracleTeacher(LEVELS)
    before = np.array(teacher.centers[...])
    model, history = fit_distilled(config(), make_student, teacher, tmp_path, data, data,
                                   progress=False)
    kinds = [(r["kind"], r["step"]) for r in history]
    assert kinds == [("train", 3), ("eval", 3)]
    assert history[0]["agreement"] == 1.0 and np.isfinite(history[0]["loss"])
    np.testing.assert_array_equal(teacher.centers[...], before)
    assert model(jnp.zeros((2, SIZE, SIZE, 3))).shape == (2, NUM_CLASSES)


def test_a_teacher_that_is_always_wrong_agrees_with_no_label(tmp_path):
    data = grey_dataset()
    teacher = OracleTeacher(np.roll(LEVELS, 1))
    cfg = dataclasses.replace(config(), eval_every=0)
    _, history = fit_distilled(cfg, make_student, teacher, tmp_path, data, progress=False)
    assert history[-1]["agreement"] == 0.0 and np.isfinite(history[-1]["loss"])
