"""Experiments that several chapters run: balanced subsets, the CNN baseline's training
loop, and the data-scale sweep (Tolstikhin et al., 2021, Sec. 3.3 and Fig. 3, in miniature).

The all-MLP models train with :func:`mixer_ref.train.fit`; models without a registry config,
such as the CNN baseline (:class:`mixer_ref.baselines.ResNetTiny`), train with
:func:`fit_module`: the same jitted step, data order, augmentation and optimizer, so that
every model gets one budget.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from mixer_ref import train
from mixer_ref.baselines import ResNetTiny
from mixer_ref.data import ArrayDataset, pipeline
from mixer_ref.train import distributed
from mixer_ref.train.loop import compute_dtype
from mixer_ref.train.metrics import MetricsWriter, peak_flops


@dataclasses.dataclass(frozen=True)
class Learner:
    """A model to train, by one of two routes: a registry model ``name`` (Mixer, ResMLP),
    trained by :func:`train.fit`; or ``make(num_classes, dtype=, rngs=)``, any Flax module
    without a registry config (the CNN baseline, ablated variants), trained by
    :func:`fit_module`."""

    label: str
    name: str | None = None
    make: Callable[..., nnx.Module] | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.make is None):
            raise ValueError(f"Learner {self.label!r}: give exactly one of name= (a registry "
                             f"model) and make= (a module constructor), got name={self.name!r},"
                             f" make={self.make!r}.")


def cnn(widths: tuple[int, ...] = (16, 32, 64), label: str = "CNN",
        stem_stride: int = 1) -> Learner:
    """The ResNetTiny baseline with stage ``widths`` and a stem of stride ``stem_stride``,
    as a :class:`Learner`."""
    return Learner(label, make=functools.partial(ResNetTiny, widths=tuple(widths),
                                                 stem_stride=stem_stride))


def class_subset(dataset: ArrayDataset, classes: Sequence[int]) -> ArrayDataset:
    """The images of ``classes`` only, relabelled 0, 1, … in the order given."""
    classes = list(classes)
    unknown = [c for c in classes if not 0 <= c < dataset.num_classes]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ValueError(f"{dataset.name}: expected distinct classes in [0, "
                         f"{dataset.num_classes}), got {classes}.")
    relabel = np.full(dataset.num_classes, -1, np.int32)
    relabel[classes] = np.arange(len(classes))
    keep = relabel[dataset.labels] >= 0
    return ArrayDataset(dataset.images[keep], relabel[dataset.labels[keep]], len(classes),
                        tuple(dataset.class_names[c] for c in classes), dataset.name)


def balanced_subset(dataset: ArrayDataset, size: int, seed: int = 0) -> ArrayDataset:
    """``size`` images of ``dataset`` with the classes as balanced as ``size`` allows.

    Each class gets ``size // num_classes`` images, and the first ``size % num_classes``
    classes one more; within a class the images are drawn at random with ``seed``. Nested
    for a fixed seed: the subset of a smaller size lies inside that of a larger one.
    """
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    share = np.full(dataset.num_classes, size // dataset.num_classes)
    share[:size % dataset.num_classes] += 1
    if not 0 < size <= len(dataset) or (share > counts).any():
        raise ValueError(f"{dataset.name}: cannot draw a balanced subset of {size} images from "
                         f"{len(dataset)} with per-class counts {counts.tolist()}.")
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(dataset.labels == c))[:share[c]]
              for c in range(dataset.num_classes)]
    index = np.sort(np.concatenate(picked))
    return dataclasses.replace(dataset, images=dataset.images[index],
                               labels=dataset.labels[index])


def xla_flops_per_image(model: nnx.Module, image_size: int) -> float:
    """XLA's count of the FLOPs of one forward pass of one image (uncompiled program)."""
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    image = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return forward.lower(state, image).cost_analysis()["flops"]


def fit_module(config: train.TrainConfig, make: Callable[..., nnx.Module],
               workdir: str | Path, train_data: ArrayDataset,
               eval_data: ArrayDataset | None = None, progress: bool = True,
               train_step: Callable | None = None) -> tuple[nnx.Module, list[dict]]:
    """Trains ``make(num_classes, dtype=, rngs=)`` on ``config``'s budget, as :func:`train.fit`
    trains a registry model: the same jitted step, batches, augmentation, optimizer and
    ``metrics.jsonl`` records (no checkpoints: these runs are short).

    ``train_step(model, optimizer, images, labels, step) -> metrics`` replaces
    :func:`train.make_train_step`'s step, e.g. with a distillation loss
    (:func:`mixer_ref.distill.fit_distilled`)."""
    config = config.validate()
    mesh = distributed.make_mesh()
    num_classes = train_data.num_classes
    dtype = compute_dtype(config.precision)
    model = nnx.jit(lambda: make(num_classes, dtype=dtype, rngs=nnx.Rngs(config.seed)))()
    optimizer = nnx.Optimizer(model, train.make_optimizer(config.optim, config.num_steps),
                              wrt=nnx.Param)
    for obj in (model, optimizer):
        nnx.update(obj, distributed.replicate(nnx.state(obj), mesh))
    train_step = train_step or train.make_train_step(config, num_classes, mesh)
    schedule = train.make_schedule(config.optim, config.num_steps)
    arrays = {"images": train_data.images, "labels": train_data.labels}
    flops = 3 * xla_flops_per_image(model, train_data.images.shape[1])
    peak, writer = peak_flops(), MetricsWriter(str(workdir))

    pending, timer, timed = [], None, 0
    for step in tqdm(range(config.num_steps), desc="train", disable=not progress):
        model.train()
        indices = pipeline.global_batch_indices(len(train_data), config.batch_size,
                                                config.seed, step)
        batch = pipeline.global_batch(arrays, indices, distributed.batch_sharding(mesh))
        pending.append(train_step(model, optimizer, batch["images"], batch["labels"],
                                  np.int32(step)))
        done = step + 1
        if timer is None:  # as in fit: time from the end of the first (compiling) step
            jax.block_until_ready(pending)
            timer, timed = time.perf_counter(), 0
        else:
            timed += 1
        last = done == config.num_steps
        logging = done % config.log_every == 0 or last
        evaluating = eval_data is not None and config.eval_every and (
            done % config.eval_every == 0 or last)
        if logging:
            means = {k: float(np.mean([m[k] for m in pending])) for k in pending[0]}
            rate = timed * config.batch_size / (time.perf_counter() - timer) if timed else None
            writer.write({"kind": "train", "step": done, **means, "lr": float(schedule(step)),
                          "images_per_sec": rate,
                          "mfu": rate * flops / peak if rate and peak else None})
            pending = []
        if evaluating:
            result = train.evaluate(model, eval_data, config.eval_batch_size)
            writer.write({"kind": "eval", "step": done, **result})
        if logging or evaluating:  # images/s counts training steps only, as in fit
            timer, timed = time.perf_counter(), 0
    model.eval()
    return model, train.read_metrics(str(workdir))


def fit_learner(learner: Learner, config: train.TrainConfig, workdir: str | Path,
                train_data: ArrayDataset, eval_data: ArrayDataset | None = None,
                progress: bool = True) -> tuple[nnx.Module, list[dict]]:
    """Trains ``learner`` with ``config`` (its ``model.name`` replaced by the learner's)."""
    if learner.make is not None:
        return fit_module(config, learner.make, workdir, train_data, eval_data, progress)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                   name=learner.name))
    return train.fit(config, str(workdir), train_data=train_data, eval_data=eval_data,
                     progress=progress)


def score(learner: Learner, model: nnx.Module, trained_on: ArrayDataset,
          test_data: ArrayDataset, steps: int, batch_size: int, seconds: float,
          train_eval_size: int = 10_000, eval_batch_size: int = 256) -> dict:
    """One row of the sweep: accuracy on ``test_data`` and on the model's own training set
    (a balanced sample of ``train_eval_size`` of its images if it has more), both without
    augmentation."""
    size = len(trained_on)
    seen = (trained_on if size <= train_eval_size
            else balanced_subset(trained_on, train_eval_size))
    return dict(model=learner.label, size=size, steps=steps, epochs=steps * batch_size / size,
                train_accuracy=train.evaluate(model, seen, eval_batch_size)["accuracy"],
                test_accuracy=train.evaluate(model, test_data, eval_batch_size)["accuracy"],
                seconds=seconds)


def data_scale_sweep(learners: Sequence[Learner], steps: Mapping[int, int],
                     train_data: ArrayDataset, test_data: ArrayDataset,
                     config: train.TrainConfig, workdir: str | Path,
                     train_eval_size: int = 10_000, seed: int = 0,
                     progress: bool = True) -> list[dict]:
    """Trains every learner on a balanced subset of ``train_data`` of each size in ``steps``
    (size → number of steps), and scores it with :func:`score`.

    Every run uses ``config`` with its own number of steps (warmup capped at a tenth of
    them) and no evaluation during training. Returns one row per (size, learner). With
    ``progress``, one bar counts the runs.
    """
    rows = []
    bar = tqdm(total=len(steps) * len(learners), desc="sweep runs", disable=not progress)
    for size, num_steps in steps.items():
        subset = balanced_subset(train_data, size, seed)
        run = dataclasses.replace(
            config, num_steps=num_steps, eval_every=0,
            log_every=min(config.log_every, num_steps), checkpoint_every=num_steps,
            optim=dataclasses.replace(
                config.optim, warmup_steps=min(config.optim.warmup_steps, num_steps // 10)))
        for learner in learners:
            start = time.perf_counter()
            bar.set_postfix(model=learner.label, images=size)
            model, _ = fit_learner(learner, run, Path(workdir) / f"{learner.label}-{size}",
                                   subset, progress=False)
            rows.append(score(learner, model, subset, test_data, num_steps, config.batch_size,
                              time.perf_counter() - start, train_eval_size,
                              config.eval_batch_size))
            bar.update(1)
    bar.close()
    return rows


def binomial_stderr(accuracy: float, n: int) -> float:
    """The standard error √(p(1 − p)/n) of an accuracy p measured on ``n`` test images: the
    spread that the sampling of the test set alone puts on one run's number."""
    if not 0 <= accuracy <= 1 or n < 1:
        raise ValueError(f"expected an accuracy in [0, 1] and n ≥ 1, got {accuracy} and {n}.")
    return float(np.sqrt(accuracy * (1 - accuracy) / n))


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """The mean of ``values`` (e.g. one number per seed) and its standard error s/√n, with
    the sample standard deviation s (ddof = 1); the error is nan for a single value."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"expected a non-empty list of numbers, got shape {values.shape}.")
    if len(values) == 1:
        return float(values[0]), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))
