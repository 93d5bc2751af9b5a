"""Creating models by name, in either framework."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from mixer_ref.configs import Config, get_config, validate_config

# Config fields that are sizes or counts: positive integers.
SIZE_FIELDS = ("patch_size", "image_size", "hidden_dim", "tokens_mlp_dim", "channels_mlp_dim",
               "num_blocks", "mlp_ratio", "num_classes")

FRAMEWORKS = ("flax", "torch")


def check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}.")


def check_sizes(fields: Mapping[str, Any], source: str) -> None:
    """Raises ``ValueError`` unless every size in ``fields`` is a positive integer and
    ``layerscale_init`` (if given) a finite number."""
    for field in SIZE_FIELDS:
        value = fields.get(field, 1)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{field} must be a positive integer, got {value!r} ({source}).")
    value = fields.get("layerscale_init", 0.0)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value):
        raise ValueError(f"layerscale_init must be a finite number, got {value!r} ({source}).")


def build(config: Config, framework: str = "flax", seed: int = 0, dtype: Any = None):
    """Instantiates ``config`` as a Flax NNX or PyTorch module initialised from ``seed``.

    ``dtype`` sets the Flax computation dtype (parameters stay float32); torch ignores it.
    """
    check_framework(framework)
    check_sizes(dataclasses.asdict(config), config.name)
    validate_config(config)
    if framework == "flax":
        from flax import nnx

        from mixer_ref.flax import MlpMixer, ResMLP

        cls = MlpMixer if config.family == "mixer" else ResMLP
        return cls(config, dtype=dtype, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    from mixer_ref.torch import MlpMixer, ResMLP

    cls = MlpMixer if config.family == "mixer" else ResMLP
    return cls(config, seed=seed)


def create_model(name: str, framework: str = "flax", *, seed: int = 0, **overrides: Any):
    """Builds the named model; ``overrides`` replace config fields (e.g. ``num_classes=10``).

    >>> model = create_model("mixer_tiny", framework="torch", seed=0)
    >>> model.config.num_blocks
    2
    """
    check_sizes(overrides, f"create_model({name!r})")
    return build(get_config(name, **overrides), framework, seed)


def framework_of(model) -> str:
    """``"flax"`` or ``"torch"``, from the model's class."""
    module = type(model).__module__
    if module.startswith("mixer_ref.flax"):
        return "flax"
    if module.startswith("mixer_ref.torch"):
        return "torch"
    raise TypeError(f"Expected a mixer_ref Flax or torch model, got {type(model).__name__}.")


def count_params(model) -> int:
    """The number of trainable parameters of a Flax or torch model."""
    if framework_of(model) == "torch":
        return sum(p.numel() for p in model.parameters())
    import jax
    from flax import nnx

    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
