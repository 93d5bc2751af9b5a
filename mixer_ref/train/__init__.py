"""Training MLP-Mixer and ResMLP: one stack for notebooks and the command line.

>>> from mixer_ref import train
>>> config = train.apply_overrides(train.get_recipe("smoke"), ["num_steps=20"])
>>> model, history = train.fit(config, "/tmp/run")            # doctest: +SKIP
>>> train.evaluate(model, dataset)                            # doctest: +SKIP
>>> train.plot_history("/tmp/run")                            # doctest: +SKIP

Command line: ``python -m mixer_ref.train --config NAME|PATH --workdir DIR [--set k=v ...]``.
"""

from mixer_ref.train.checkpointing import load_workdir
from mixer_ref.train.loop import TrainingDiverged, build_model, evaluate, fit, make_train_step
from mixer_ref.train.metrics import plot_history, read_metrics
from mixer_ref.train.optim import make_optimizer, make_schedule
from mixer_ref.train.recipes import (
    AugmentSpec,
    DataSpec,
    ModelSpec,
    OptimSpec,
    TrainConfig,
    apply_overrides,
    get_recipe,
    list_recipes,
    load_config,
)
from mixer_ref.train.workdir import ConfigMismatch, WorkdirError, WorkdirLocked

__all__ = [
    "AugmentSpec",
    "ConfigMismatch",
    "DataSpec",
    "ModelSpec",
    "OptimSpec",
    "TrainConfig",
    "TrainingDiverged",
    "WorkdirError",
    "WorkdirLocked",
    "apply_overrides",
    "build_model",
    "evaluate",
    "fit",
    "get_recipe",
    "list_recipes",
    "load_config",
    "load_workdir",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "plot_history",
    "read_metrics",
]
