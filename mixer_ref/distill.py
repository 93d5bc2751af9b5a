"""Hard-label knowledge distillation from a teacher network: DeiT's "hard-label
distillation" objective (Touvron et al., 2021a), as ResMLP uses it for its distilled models
(Touvron et al., 2021b: a RegNetY-16GF convnet teacher, hard distillation).

DeiT adds a distillation token with its own head; ResMLP has no class or distillation
token, so the single head is trained on both targets:

    L = ½ CE(ψ(Z_s), y) + ½ CE(ψ(Z_s), y_t),    y_t = argmax_c Z_t(c),

where Z_s and Z_t are the student's and the teacher's logits on the same augmented batch.

:func:`fit_distilled` trains a student as :func:`mixer_ref.experiments.fit_module` trains
any module: the same batches, augmentation, optimizer and schedule, so that a student with
and without a teacher differ only in the loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mixer_ref import train
from mixer_ref.data import ArrayDataset, augment
from mixer_ref.experiments import fit_module
from mixer_ref.train import distributed


def hard_distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                           targets: jax.Array) -> jax.Array:
    """½ CE(student, ``targets``) + ½ CE(student, argmax teacher), averaged over the batch.

    ``targets`` are probability vectors (one-hot, smoothed or mixed labels); the teacher's
    argmax is a hard label, and no gradient flows into the teacher.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.shape != targets.shape:
        raise ValueError(f"expected student logits, teacher logits and targets of one shape "
                         f"(batch, classes), got {student_logits.shape}, "
                         f"{teacher_logits.shape} and {targets.shape}.")
    teacher_labels = jax.lax.stop_gradient(teacher_logits).argmax(-1)
    true = optax.softmax_cross_entropy(student_logits, targets)
    distilled = optax.softmax_cross_entropy_with_integer_labels(student_logits, teacher_labels)
    return (0.5 * true + 0.5 * distilled).mean()


def make_distill_train_step(config: train.TrainConfig, num_classes: int, mesh):
    """The jitted step ``(student, optimizer, teacher, images uint8, labels, step) ->
    metrics``: :func:`mixer_ref.train.make_train_step` with the loss of
    :func:`hard_distillation_loss`. The teacher, in eval mode, sees the student's augmented
    (and mixed) batch; ``agreement`` is the share of the batch where the teacher's label is
    the true one."""
    aug = dataclasses.asdict(config.augment)
    mix = {k: aug.pop(k) for k in ("mixup_alpha", "cutmix_alpha")}
    replicated = distributed.replicated(mesh)

    @nnx.jit
    def train_step(student, optimizer, teacher, images, labels, step):
        key = jax.random.fold_in(jax.random.key(config.seed), step)
        k_aug, k_mix, k_dropout = jax.random.split(key, 3)
        x = augment.augment(k_aug, augment.to_float(images), **aug)
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes),
                                      config.label_smoothing)
        x, targets = augment.mix(k_mix, x, targets, **mix)
        x = augment.normalize(x)
        nnx.reseed(student, dropout=k_dropout)
        teacher_logits = teacher(x).astype(jnp.float32)

        def loss_fn(student):
            logits = student(x).astype(jnp.float32)
            return hard_distillation_loss(logits, teacher_logits, targets), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(student)
        grads = jax.lax.with_sharding_constraint(grads, replicated)  # the all-reduce
        optimizer.update(student, grads)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).mean(),
                "agreement": (teacher_logits.argmax(-1) == labels).mean()}

    return train_step


def fit_distilled(config: train.TrainConfig, make: Callable[..., nnx.Module],
                  teacher: nnx.Module, workdir: str | Path, train_data: ArrayDataset,
                  eval_data: ArrayDataset | None = None,
                  progress: bool = True) -> tuple[nnx.Module, list[dict]]:
    """Trains the student ``make(num_classes, dtype=, rngs=)`` with ``teacher`` on
    ``config``'s budget: :func:`mixer_ref.experiments.fit_module` (the same batches,
    initialisation, optimizer and logs) with the step of :func:`make_distill_train_step`."""
    mesh = distributed.make_mesh()
    teacher.eval()
    nnx.update(teacher, distributed.replicate(nnx.state(teacher), mesh))
    distill_step = make_distill_train_step(config, train_data.num_classes, mesh)

    def train_step(student, optimizer, images, labels, step):
        return distill_step(student, optimizer, teacher, images, labels, step)

    return fit_module(config, make, workdir, train_data, eval_data, progress, train_step)
