"""Checkpoints with Orbax, and the workdir layout.

A workdir holds ``config.json`` (the :class:`~mixer_ref.train.recipes.TrainConfig`, usable
as ``--config``), ``model.json`` (the resolved model config), ``metrics.jsonl`` and
``checkpoints/<step>/{params,opt_state}``. ``step`` counts completed optimizer steps; the
data order and the augmentation/dropout keys are functions of ``(seed, step)``, so the
parameters, the optimizer state and the step are the whole training state.

The workdir may be any path Orbax can write: a local directory, Google Drive mounted on
Colab, or ``gs://...``.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from mixer_ref.configs import Config, MixerConfig, ResMLPConfig
from mixer_ref.train import distributed


def _path(workdir: str) -> epath.Path:
    return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir))


class Checkpointer:
    """Saves and restores ``(model params, optimizer state)`` under ``workdir/checkpoints``.

    Saves are synchronous, so a checkpoint is complete once :meth:`save` returns.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3):
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(_path(workdir) / "checkpoints", options=options,
                                             item_names=("params", "opt_state"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer) -> None:
        if step in self.manager.all_steps():
            return
        params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
        opt_state = nnx.to_pure_dict(nnx.state(optimizer))
        self.manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state)))

    def restore(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer) -> None:
        """Loads checkpoint ``step`` into ``model`` and ``optimizer``, keeping their shardings."""
        params, opt_state = nnx.state(model, nnx.Param), nnx.state(optimizer)
        abstract = lambda s: jax.tree.map(ocp.utils.to_shape_dtype_struct,  # noqa: E731
                                          nnx.to_pure_dict(s))
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract(params)),
            opt_state=ocp.args.StandardRestore(abstract(opt_state))))
        nnx.replace_by_pure_dict(params, restored["params"])
        nnx.replace_by_pure_dict(opt_state, restored["opt_state"])
        nnx.update(model, params)
        nnx.update(optimizer, opt_state)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def write_configs(workdir: str, train_config, model_config: Config) -> None:
    """Writes ``config.json`` and ``model.json`` (process 0 only)."""
    if not distributed.is_primary():
        return
    path = _path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(dataclasses.asdict(train_config), indent=2))
    model = {"family": model_config.family, **dataclasses.asdict(model_config)}
    (path / "model.json").write_text(json.dumps(model, indent=2))


def read_model_config(workdir: str) -> Config:
    """The model config stored in ``workdir/model.json``."""
    file = _path(workdir) / "model.json"
    if not file.exists():
        raise FileNotFoundError(f"No model.json in {workdir!r}: expected a training workdir "
                                "written by mixer_ref.train.")
    fields = json.loads(file.read_text())
    cls = MixerConfig if fields.pop("family") == "mixer" else ResMLPConfig
    return cls(**fields)


def load_workdir(workdir: str, step: int | None = None, dtype=None) -> nnx.Module:
    """The Flax model of a training workdir at ``step`` (default: the latest checkpoint).

    This is what ``mixer_ref.load_pretrained(workdir)`` calls for training workdirs.
    """
    from mixer_ref.models import build

    config = read_model_config(workdir)
    manager = ocp.CheckpointManager(_path(workdir) / "checkpoints",
                                    item_names=("params", "opt_state"))
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"No checkpoint in {workdir!r}/checkpoints.")
    model = build(config, "flax", 0, dtype=dtype)
    params = nnx.state(model, nnx.Param)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(params))
    restored = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(target)))
    manager.close()
    nnx.replace_by_pure_dict(params, restored["params"])
    nnx.update(model, params)
    model.eval()
    return model
