"""Checkpoints with Orbax: which are kept, and resuming past damaged ones.

A checkpoint is ``workdir/checkpoints/<step>/{params,opt_state}``. ``step`` counts
completed optimizer steps; the data order and the augmentation/dropout keys are functions
of ``(seed, step)``, so the parameters, the optimizer state and the step are the whole
training state. The workdir layout is described in ``mixer_ref.train.workdir``.

Kept: the ``max_to_keep`` latest checkpoints and the best one by eval accuracy (Orbax's
``BestN`` preservation policy). The training loop saves only finite parameters, so the
latest checkpoint is also the last good one. Orbax writes a checkpoint into a temporary
directory and renames it when complete, so a run killed during a save leaves the previous
checkpoints intact.

Resuming (:meth:`Checkpointer.restore_latest`) tries the newest checkpoint first; one that
cannot be read, or holds non-finite parameters, is skipped with a warning and set aside in
``damaged_checkpoints/``, and the next older one is tried.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

from mixer_ref.train import distributed
from mixer_ref.train import workdir as workdir_lib

ITEMS = ("params", "opt_state")
BEST_METRIC = "accuracy"  # of the eval split; higher is better


def _best_metric(metrics: dict) -> float:
    """The eval accuracy saved with a checkpoint; −∞ for a checkpoint without evaluation."""
    return metrics.get(BEST_METRIC, -math.inf)


def all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree)
               if jnp.issubdtype(x.dtype, jnp.inexact))


def _abstract(state):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else 'no message'}"


class Checkpointer:
    """Saves and restores ``(model params, optimizer state)`` under ``workdir/checkpoints``.

    Saves are synchronous, so a checkpoint is complete once :meth:`save` returns.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3):
        self.workdir = workdir
        policy = policies.AnyPreservationPolicy([
            policies.LatestN(n=max_to_keep),
            policies.BestN(get_metric_fn=_best_metric, n=1,
                           keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy, best_fn=_best_metric, best_mode="max", create=True,
            enable_async_checkpointing=False, cleanup_tmp_directories=True)
        self.directory = workdir_lib.path(workdir) / "checkpoints"
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=ITEMS)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The checkpoint with the best eval accuracy (the latest if none was evaluated)."""
        return self.manager.best_step()

    def save(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer,
             metrics: dict[str, float] | None = None) -> None:
        """Saves checkpoint ``step``, with the eval ``metrics`` of that step if any."""
        if step in self.manager.all_steps():
            return
        params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
        opt_state = nnx.to_pure_dict(nnx.state(optimizer))
        self.manager.save(step, metrics=dict(metrics or {}), args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state)))

    def restore(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer) -> None:
        """Loads checkpoint ``step`` into ``model`` and ``optimizer``, keeping their shardings."""
        params, opt_state = nnx.state(model, nnx.Param), nnx.state(optimizer)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(params)),
            opt_state=ocp.args.StandardRestore(_abstract(opt_state))))
        nnx.replace_by_pure_dict(params, restored["params"])
        nnx.replace_by_pure_dict(opt_state, restored["opt_state"])
        nnx.update(model, params)
        nnx.update(optimizer, opt_state)

    def restore_latest(self, model: nnx.Module, optimizer: nnx.Optimizer) -> int:
        """Restores the newest good checkpoint and returns its step (0: none exists).

        Newer ones that fail to restore, or hold non-finite parameters, are set aside in
        ``damaged_checkpoints/``. Raises ``ValueError`` if checkpoints exist but none is good.
        """
        failures = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                self.restore(step, model, optimizer)
                problem = None if all_finite(nnx.state(model, nnx.Param)) else (
                    "non-finite parameters")
            except Exception as error:  # noqa: BLE001 (tensorstore, Orbax, OS errors)
                problem = _describe(error)
            if problem is None:
                self._set_aside([s for s, _ in failures])
                return step
            warnings.warn(f"Skipping checkpoint {step} of {self.directory}: {problem}.",
                          stacklevel=2)
            failures.append((step, problem))
        if failures:
            listing = "; ".join(f"step {s}: {p}" for s, p in failures)
            raise ValueError(f"No checkpoint in {self.directory} could be restored ({listing}). "
                             "Move the checkpoints directory away to start over.")
        return 0

    def _set_aside(self, steps: list[int]) -> None:
        """Moves damaged checkpoints to ``damaged_checkpoints/<step>`` (process 0)."""
        if steps and distributed.is_primary():
            target = self.directory.parent / "damaged_checkpoints"
            target.mkdir(parents=True, exist_ok=True)
            for step in steps:
                name, k = str(step), 1
                while (target / name).exists():
                    name, k = f"{step}.{k}", k + 1
                (self.directory / str(step)).rename(target / name)
                print(f"Moved the damaged checkpoint {step} to {target / name}.", flush=True)
        if steps:
            distributed.barrier("set_aside_damaged_checkpoints")
            self.manager.reload()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def load_workdir(workdir: str, step: int | None = None, dtype=None) -> nnx.Module:
    """The Flax model of a training workdir at ``step`` (default: the newest checkpoint that
    restores; damaged newer ones are skipped with a warning).

    This is what ``mixer_ref.load_pretrained(workdir)`` calls for training workdirs.
    """
    from mixer_ref.models import build

    config = workdir_lib.read_model_config(workdir)
    directory = workdir_lib.path(workdir) / "checkpoints"
    manager = ocp.CheckpointManager(directory, item_names=ITEMS,
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    steps = sorted(manager.all_steps(), reverse=True)
    if step is not None:
        if step not in steps:
            raise ValueError(f"No checkpoint {step} in {directory}; it holds steps "
                             f"{sorted(steps)}.")
        steps = [step]
    if not steps:
        raise FileNotFoundError(f"No checkpoint in {directory}.")
    model = build(config, "flax", 0, dtype=dtype)
    params = nnx.state(model, nnx.Param)
    failures = []
    try:
        for candidate in steps:
            try:
                restored = manager.restore(candidate, args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(_abstract(params))))["params"]
            except Exception as error:  # noqa: BLE001 (tensorstore, Orbax, OS errors)
                failures.append(f"step {candidate}: {_describe(error)}")
            else:
                if all_finite(restored):
                    break
                failures.append(f"step {candidate}: non-finite parameters")
            if step is None:
                warnings.warn(f"Skipping checkpoint {candidate} of {directory}: "
                              f"{failures[-1].split(': ', 1)[1]}.", stacklevel=2)
        else:
            raise ValueError(f"Cannot load {directory}: no checkpoint restores "
                             f"({'; '.join(failures)}).")
    finally:
        manager.close()
    nnx.replace_by_pure_dict(params, restored)
    nnx.update(model, params)
    model.eval()
    return model
