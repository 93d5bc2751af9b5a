"""The training loop: config → data → model → ``train_step`` → loop → checkpoint.

The step is jitted once over a 1-D data mesh (``distributed.make_mesh``): the uint8 batch
arrives split over the devices, augmentation runs on device, the gradients are all-reduced
to the replicated parameters. The randomness of step ``t`` (augmentation, mixup, dropout,
stochastic depth) comes from ``fold_in(key(seed), t)`` and its batch from
``pipeline.global_batch_indices(..., seed, t)``, so a resumed run repeats an uninterrupted
one bit for bit (on the same devices).

Divergence guard: at each log, evaluation and checkpoint the loop checks the losses of the
steps since the last check and the parameters; a non-finite one stops the run with
:class:`TrainingDiverged` before anything of it is saved, so the latest checkpoint stays
the last finite one.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from mixer_ref.configs import get_config
from mixer_ref.data import augment, pipeline
from mixer_ref.flops import flops_per_image
from mixer_ref.models import build
from mixer_ref.train import distributed, metrics
from mixer_ref.train import workdir as workdir_lib
from mixer_ref.train.checkpointing import Checkpointer, all_finite
from mixer_ref.train.optim import make_optimizer, make_schedule
from mixer_ref.train.recipes import DataSpec, TrainConfig

SYNTHETIC_SIZES = {"train": 1024, "test": 256}
SYNTHETIC_CLASSES = 10


def compute_dtype(precision: str):
    """bfloat16 compute on TPU/GPU and float32 on CPU for ``"auto"``; params stay float32."""
    if precision == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return jnp.dtype(precision).type


def load_dataset(spec: DataSpec, split: str, image_size: int):
    """``mixer_ref.data.load`` at the model's resolution, or the generated toy set."""
    if spec.dataset == "synthetic":
        return pipeline.synthetic(SYNTHETIC_SIZES.get(split, 256), image_size,
                                  SYNTHETIC_CLASSES, split=split)
    if spec.dataset == "shards":  # ArrayRecord shards in spec.root, read on demand
        from mixer_ref.data.shards import load_shards

        return load_shards(spec.root, split, image_size)
    from mixer_ref.data import load

    return load(spec.dataset, split=split, root=spec.root, image_size=image_size)


def load_backbone(path: str) -> nnx.Module:
    """The model to fine-tune from: a training workdir, or a released checkpoint file."""
    import mixer_ref

    return mixer_ref.load_pretrained(path)


def build_model(config: TrainConfig, num_classes: int, dtype=None) -> nnx.Module:
    """The model of ``config.model`` with ``num_classes`` outputs.

    With ``model.pretrained`` set, the architecture and weights come from that checkpoint and
    the head is replaced by a fresh zero head (Mixer Supp. C).
    """
    spec = config.model
    overrides = dict(num_classes=num_classes, dropout=spec.dropout,
                     stoch_depth=spec.stoch_depth)
    if spec.pretrained is None:
        if spec.image_size is not None:
            overrides["image_size"] = spec.image_size
        model_config = get_config(spec.name, **overrides)
        # One compiled initialiser instead of one eager dispatch per parameter.
        return nnx.jit(lambda: build(model_config, "flax", config.seed, dtype=dtype))()
    source = load_backbone(spec.pretrained)
    if spec.image_size not in (None, source.config.image_size):  # Supp. C: K× resolution
        from mixer_ref.surgery import expand_token_mixing

        source = expand_token_mixing(source, spec.image_size)
    model = build(dataclasses.replace(source.config, **overrides), "flax", config.seed,
                  dtype=dtype)
    target = nnx.state(model, nnx.Param)
    fresh = nnx.to_pure_dict(target)
    weights = nnx.to_pure_dict(nnx.state(source, nnx.Param))
    weights["head"] = jax.tree.map(jnp.zeros_like, fresh["head"])
    for (path, new), old in zip(jax.tree_util.tree_leaves_with_path(fresh),
                                jax.tree.leaves(weights), strict=True):
        if new.shape != old.shape:
            raise ValueError(f"Pretrained {jax.tree_util.keystr(path)} has shape {old.shape}, "
                             f"the model expects {new.shape}.")
    nnx.replace_by_pure_dict(target, weights)
    nnx.update(model, target)
    return model


def make_train_step(config: TrainConfig, num_classes: int, mesh):
    """The jitted step ``(model, optimizer, images uint8, labels, step) -> metrics``."""
    aug = dataclasses.asdict(config.augment)
    mix = {k: aug.pop(k) for k in ("mixup_alpha", "cutmix_alpha")}
    replicated = distributed.replicated(mesh)

    @nnx.jit
    def train_step(model, optimizer, images, labels, step):
        key = jax.random.fold_in(jax.random.key(config.seed), step)
        k_aug, k_mix, k_dropout = jax.random.split(key, 3)
        x = augment.augment(k_aug, augment.to_float(images), **aug)
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes),
                                      config.label_smoothing)
        x, targets = augment.mix(k_mix, x, targets, **mix)
        nnx.reseed(model, dropout=k_dropout)

        def loss_fn(model):
            logits = model(augment.normalize(x)).astype(jnp.float32)
            return optax.softmax_cross_entropy(logits, targets).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        grads = jax.lax.with_sharding_constraint(grads, replicated)  # the all-reduce
        optimizer.update(model, grads)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).mean()}

    return train_step


@nnx.jit
def _eval_step(model, images, labels, mask):
    logits = model(augment.normalize(augment.to_float(images))).astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = logits.argmax(-1) == labels
    return jnp.sum(jnp.where(mask, correct, 0)), jnp.sum(jnp.where(mask, loss, 0.0))


def _evaluate(model, dataset, batch_size: int, mesh) -> dict[str, float]:
    sharding = distributed.batch_sharding(mesh)
    batch_size = -(-batch_size // mesh.size) * mesh.size
    model.eval()
    correct = loss = 0.0
    for indices, mask in pipeline.eval_batches(len(dataset.labels), batch_size):
        batch = pipeline.global_batch(
            {"images": dataset.images, "labels": dataset.labels}, indices, sharding)
        mask = jax.make_array_from_process_local_data(
            sharding, pipeline.process_slice(mask), mask.shape)
        c, l_ = _eval_step(model, batch["images"], batch["labels"], mask)
        correct, loss = correct + c, loss + l_
    n = len(dataset.labels)
    return {"accuracy": float(correct) / n, "loss": float(loss) / n}


def evaluate(model: nnx.Module, dataset, batch_size: int = 256) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on every example of ``dataset``
    (an ``ArrayDataset``: uint8 NHWC ``images``, int ``labels``), over all devices."""
    mesh = distributed.make_mesh()
    nnx.update(model, distributed.replicate(nnx.state(model), mesh))
    return _evaluate(model, dataset, batch_size, mesh)


class _StopOnSigterm:
    """Sets ``requested`` on SIGTERM; the loop checkpoints at the next step boundary."""

    def __enter__(self):
        self.requested = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became non-finite; nothing after ``last_good_step`` was
    saved."""

    def __init__(self, message: str, step: int, last_good_step: int | None):
        super().__init__(message)
        self.step, self.last_good_step = step, last_good_step


def _first_non_finite(unchecked: list[tuple[int, dict]], model: nnx.Module
                      ) -> tuple[int, float] | None:
    """(step, loss) of the first step with a non-finite loss, else (last step, its loss) if
    the parameters are non-finite, else None."""
    for step, m in unchecked:
        if not np.isfinite(float(m["loss"])):
            return step, float(m["loss"])
    if unchecked and not all_finite(nnx.state(model, nnx.Param)):
        return unchecked[-1][0], float(unchecked[-1][1]["loss"])
    return None


def _diverged(workdir: str, step: int, loss: float, last_good: int | None) -> TrainingDiverged:
    what = (f"the loss is {loss}" if not np.isfinite(loss)
            else "the parameters became non-finite")
    saved = (f"The last finite checkpoint is step {last_good} (checkpoints/{last_good}); it "
             "is kept, and nothing after it was saved." if last_good
             else "No checkpoint was saved before it.")
    return TrainingDiverged(
        f"Training diverged at step {step}: {what}. {saved} Lower optim.learning_rate "
        "(or lengthen optim.warmup_steps, or set optim.grad_clip_norm), then run again "
        "with --allow_config_change to resume from the last finite checkpoint; "
        f"mixer_ref.load_pretrained({workdir!r}) loads it.", step, last_good)


def _stop_requested(flag: bool) -> bool:
    """Any process asked to stop (all processes must agree to checkpoint together)."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def fit(config: TrainConfig, workdir: str, *, train_data=None, eval_data=None,
        progress: bool = True, allow_config_change: bool = False
        ) -> tuple[nnx.Module, list[dict[str, Any]]]:
    """Trains ``config`` in ``workdir``, resuming from its latest good checkpoint.

    ``train_data``/``eval_data`` (``ArrayDataset``-like) replace the config's dataset.
    Returns the model and the history (the records of ``metrics.jsonl``). On SIGTERM the
    run checkpoints at the next step boundary and returns early; call again to resume.

    One run at a time per workdir (``workdir.WorkdirLock``). A resume whose config differs
    from the workdir's is refused (``workdir.ConfigMismatch``) unless only logging
    intervals changed, or ``allow_config_change`` is set and the architecture is the same;
    the change is then logged in ``metrics.jsonl`` and the previous config kept. A
    non-finite loss or parameter raises :class:`TrainingDiverged`.
    """
    config = config.validate()
    lock = workdir_lib.WorkdirLock(workdir)
    if distributed.is_primary():
        lock.acquire()
    try:
        return _fit(config, workdir, train_data, eval_data, progress, allow_config_change)
    finally:
        lock.release()


def _model_config(config: TrainConfig):
    """The registry config of ``model.name``, or the pretrained checkpoint's."""
    pretrained = config.model.pretrained
    if pretrained is None:
        return get_config(config.model.name)
    if (workdir_lib.path(pretrained) / workdir_lib.MODEL_FILE).exists():
        return workdir_lib.read_model_config(pretrained)
    return load_backbone(pretrained).config


def _fit(config, workdir, train_data, eval_data, progress, allow_config_change):
    changes = workdir_lib.check_resume(workdir, config, allow_config_change)
    mesh = distributed.make_mesh()
    image_size = config.model.image_size or _model_config(config).image_size
    if train_data is None:
        train_data = load_dataset(config.data, config.data.train_split, image_size)
    if eval_data is None and config.eval_every:
        eval_data = load_dataset(config.data, config.data.eval_split, image_size)
    num_classes = train_data.num_classes
    if config.batch_size % mesh.size:
        raise ValueError(f"batch_size ({config.batch_size}) must be a multiple of the "
                         f"number of devices ({mesh.size}).")

    model = build_model(config, num_classes, compute_dtype(config.precision))
    workdir_lib.check_model(workdir, model.config)
    tx = make_optimizer(config.optim, config.num_steps)
    optimizer = nnx.jit(lambda model: nnx.Optimizer(model, tx, wrt=nnx.Param))(model)
    for obj in (model, optimizer):
        nnx.update(obj, distributed.replicate(nnx.state(obj), mesh))

    checkpointer = Checkpointer(workdir)
    start = checkpointer.restore_latest(model, optimizer)
    writer = metrics.MetricsWriter(workdir)
    if distributed.is_primary():
        if changes:
            kept = workdir_lib.keep_previous_config(workdir, start)
            writer.write({"kind": "event", "event": "config_change", "step": start,
                          "changes": {k: {"old": a, "new": b} for k, (a, b) in changes.items()},
                          "previous_config": kept})
            print(f"Config changed at step {start}; the previous one is kept as {kept}.",
                  flush=True)
        workdir_lib.write_configs(workdir, config, model.config)
    if start:
        print(f"Resumed from {workdir} at step {start}.")
    schedule = make_schedule(config.optim, config.num_steps)
    train_step = make_train_step(config, num_classes, mesh)
    sharding = distributed.batch_sharding(mesh)
    arrays = {"images": train_data.images, "labels": train_data.labels}
    peak = metrics.peak_flops()
    image_flops = flops_per_image(model.config, train=True)

    bar = tqdm(total=config.num_steps, initial=start, desc="train",
               disable=not (progress and distributed.is_primary()))
    pending, unchecked, timer, timed_steps = [], [], None, 0
    try:
        with _StopOnSigterm() as stop:
            for step in range(start, config.num_steps):
                model.train()
                indices = pipeline.global_batch_indices(len(train_data.labels),
                                                        config.batch_size, config.seed, step)
                batch = pipeline.global_batch(arrays, indices, sharding)
                result = train_step(model, optimizer, batch["images"], batch["labels"],
                                    np.int32(step))
                pending.append(result)
                unchecked.append((step + 1, result))
                done = step + 1
                bar.update(1)
                if timer is None:  # start timing after the first (compiling) step
                    jax.block_until_ready(pending)
                    timer, timed_steps = time.perf_counter(), 0
                else:
                    timed_steps += 1
                last = done == config.num_steps
                logging = done % config.log_every == 0 or last
                evaluating = bool(eval_data is not None and config.eval_every
                                  and (done % config.eval_every == 0 or last))
                stopping = (_stop_requested(stop.requested) if logging
                            else stop.requested and jax.process_count() == 1)
                saving = (done % config.checkpoint_every == 0 or last or stopping
                          or evaluating)
                if logging or evaluating or saving:
                    bad = _first_non_finite(unchecked, model)
                    unchecked = []
                    if bad is not None:
                        writer.write({"kind": "event", "event": "diverged", "step": bad[0],
                                      "loss": bad[1] if np.isfinite(bad[1]) else str(bad[1]),
                                      "last_good_step": checkpointer.latest_step()})
                        raise _diverged(workdir, bad[0], bad[1], checkpointer.latest_step())
                if logging:
                    means = {k: float(np.mean([m[k] for m in pending])) for k in pending[0]}
                    rate = (timed_steps * config.batch_size / (time.perf_counter() - timer)
                            if timed_steps else None)
                    writer.write({"kind": "train", "step": done, **means,
                                  "lr": float(schedule(step)), "images_per_sec": rate,
                                  "mfu": rate * image_flops / peak if rate and peak else None})
                    bar.set_postfix(loss=f"{means['loss']:.3f}",
                                    acc=f"{means['accuracy']:.3f}")
                    pending = []
                result = None
                if evaluating:
                    result = _evaluate(model, eval_data, config.eval_batch_size, mesh)
                    writer.write({"kind": "eval", "step": done, **result})
                if saving:
                    checkpointer.save(done, model, optimizer, result)
                if logging or evaluating or saving:  # images/s counts training steps only
                    timer, timed_steps = time.perf_counter(), 0
                if stopping:
                    if distributed.is_primary():
                        print(f"\nSIGTERM: saved a checkpoint at step {done} in {workdir}; "
                              "run the same command again to resume.", flush=True)
                    break
    finally:
        bar.close()
        checkpointer.close()
    model.eval()
    history = (metrics.read_metrics(workdir)
               if (workdir_lib.path(workdir) / metrics.METRICS_FILE).exists() else [])
    return model, history
