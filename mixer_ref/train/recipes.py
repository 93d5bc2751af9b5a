"""Training recipes: small typed configs, registered by name.

A recipe is a :class:`TrainConfig`; every hyperparameter has one home in it. The papers'
recipes are kept as written (Tolstikhin et al., 2021, Sec. 3, Table 4 and Supp. C;
Touvron et al., 2021, Sec. 4); the course presets scale them down to run on one Colab chip.

Configs come from a registered NAME or from a JSON file PATH. A JSON file holds the nested
fields to set, optionally on top of a named recipe given by ``"base"``::

    {"base": "cifar10_mixer", "optim": {"learning_rate": 0.002}, "num_steps": 5000}

Keys that start with ``_`` are comments (JSON has none) and are ignored, e.g.
``"_source": "Table 4"``. The ``config.json`` that training writes into its workdir is such
a file. Command-line overrides use dotted keys, ``--set optim.learning_rate=3e-3
model.stoch_depth=0.1``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which model to train. ``num_classes`` and ``image_size`` come from the data.

    ``dropout`` and ``stoch_depth`` override the registry config's fields of those names.
    ``pretrained`` is a checkpoint (a training workdir, or anything ``mixer_ref.
    load_pretrained`` accepts) to fine-tune from, with a fresh zero head (Supp. C); the
    architecture then comes from the checkpoint and ``name`` is not used.
    ``image_size`` (default: the model's) changes the resolution; a pretrained model is
    expanded to it with ``mixer_ref.expand_token_mixing`` (Supp. C, a multiple of its own).
    """

    name: str = "mixer_tiny"
    dropout: float = 0.0
    stoch_depth: float = 0.0
    pretrained: str | None = None
    image_size: int | None = None


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The dataset, by ``mixer_ref.data.load`` name, ``"synthetic"`` (generated here), or
    ``"shards"``: the ArrayRecord shard directory ``root`` (``mixer_ref.data.shards``).

    Images are loaded at the model's ``image_size``.
    """

    dataset: str = "synthetic"
    train_split: str = "train"
    eval_split: str = "test"
    root: str | None = None


@dataclasses.dataclass(frozen=True)
class OptimSpec:
    """Optimizer and learning-rate schedule (optax).

    ``optimizer``: ``"adam"`` (Adam with decoupled weight decay, pretraining),
    ``"sgd"`` (momentum SGD, fine-tuning) or ``"lamb"`` (ResMLP).
    ``schedule``: ``"linear"`` (linear warmup, then linear decay to 0) or ``"cosine"``
    (linear warmup, then cosine decay to 0). Weight decay applies to kernels only (rank ≥ 2),
    as in big_vision and timm. ``grad_clip_norm`` = 0 disables clipping.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    momentum: float = 0.9
    grad_clip_norm: float = 1.0


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """On-device augmentation (``mixer_ref.data.augment``); zeros switch parts off.

    ``crop``: ``"none"``, ``"pad"`` (pad by ``crop_padding`` then random crop, CIFAR style)
    or ``"resized"`` (Inception-style random resized crop). RandAugment applies
    ``randaug_num_ops`` (N) ops of magnitude ``randaug_magnitude`` (M, on the 0-10 scale of
    the reference implementations; M > 10 extrapolates, as in the Mixer paper's M = 15).
    """

    crop: str = "none"
    crop_padding: int = 4
    flip: bool = False
    randaug_num_ops: int = 0
    randaug_magnitude: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training run. ``batch_size`` is the global batch over all devices."""

    model: ModelSpec = ModelSpec()
    data: DataSpec = DataSpec()
    optim: OptimSpec = OptimSpec()
    augment: AugmentSpec = AugmentSpec()
    batch_size: int = 128
    num_steps: int = 1000
    label_smoothing: float = 0.0
    seed: int = 0
    precision: str = "auto"
    log_every: int = 50
    eval_every: int = 0  # 0: no evaluation during training
    checkpoint_every: int = 500
    eval_batch_size: int = 256

    def validate(self) -> TrainConfig:
        """Raises ``ValueError`` naming the key, the value and the allowed range on an
        invalid setting or combination; returns the config."""
        _check_choice("optim.optimizer", self.optim.optimizer, ("adam", "sgd", "lamb"))
        _check_choice("optim.schedule", self.optim.schedule, ("linear", "cosine"))
        _check_choice("augment.crop", self.augment.crop, ("none", "pad", "resized"))
        _check_choice("precision", self.precision, ("auto", "float32", "bfloat16"))
        for key, low, high, high_open in RANGES:
            value = self
            for part in key.split("."):
                value = getattr(value, part)
            if value is not None:
                _check_range(key, value, low, high, high_open)
        if not 0 <= self.optim.warmup_steps <= self.num_steps:
            raise ValueError(f"optim.warmup_steps must lie in [0, num_steps={self.num_steps}], "
                             f"got {self.optim.warmup_steps}.")
        return self


# Allowed ranges: (key, low, high, whether high is excluded); None: unbounded. The low end is
# included, except for optim.learning_rate, whose range is checked as (0, ∞).
RANGES = (
    ("batch_size", 1, None, False),
    ("eval_batch_size", 1, None, False),
    ("num_steps", 1, None, False),
    ("log_every", 1, None, False),
    ("checkpoint_every", 1, None, False),
    ("eval_every", 0, None, False),
    ("seed", 0, 2**32 - 1, False),
    ("label_smoothing", 0.0, 1.0, True),
    ("model.dropout", 0.0, 1.0, True),
    ("model.stoch_depth", 0.0, 1.0, True),
    ("model.image_size", 1, None, False),
    ("optim.learning_rate", 0.0, None, False),
    ("optim.warmup_steps", 0, None, False),
    ("optim.weight_decay", 0.0, None, False),
    ("optim.b1", 0.0, 1.0, True),
    ("optim.b2", 0.0, 1.0, True),
    ("optim.momentum", 0.0, 1.0, True),
    ("optim.grad_clip_norm", 0.0, None, False),
    ("augment.crop_padding", 0, None, False),
    ("augment.randaug_num_ops", 0, None, False),
    ("augment.randaug_magnitude", 0.0, None, False),
    ("augment.mixup_alpha", 0.0, None, False),
    ("augment.cutmix_alpha", 0.0, None, False),
)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _check_range(key: str, value, low, high, high_open: bool) -> None:
    strict_low = key == "optim.learning_rate"
    left = "(" if strict_low else "["
    right = "∞)" if high is None else (f"{high})" if high_open else f"{high}]")
    allowed = f"{left}{low}, {right}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number in {allowed}, got {value!r}.")
    if not math.isfinite(value) or value < low or (strict_low and value == low) or (
            high is not None and (value > high or (high_open and value == high))):
        raise ValueError(f"{key} must lie in {allowed}, got {value}.")


def _replace(config: TrainConfig, **nested: dict[str, Any] | Any) -> TrainConfig:
    """``dataclasses.replace`` that also merges dicts into the nested specs."""
    fields = {}
    for name, value in nested.items():
        current = getattr(config, name)
        fields[name] = (dataclasses.replace(current, **value) if isinstance(value, dict)
                        else value)
    return dataclasses.replace(config, **fields)


# --- the papers' recipes -----------------------------------------------------------------

# Mixer pretraining, Sec. 3 and Table 4 (Mixer-B/16 on ImageNet-1k): Adam (0.9, 0.999),
# 10k warmup steps then linear decay, batch 4096, lr 1e-3, weight decay 0.1, clipping at 1,
# RandAugment M = 15, mixup 0.5, stochastic depth 0.1, 300 epochs (1.28M images / 4096).
MIXER_IMAGENET = TrainConfig(
    model=ModelSpec("mixer_b16", stoch_depth=0.1),
    data=DataSpec("imagenet", eval_split="validation"),
    optim=OptimSpec("adam", 1e-3, "linear", warmup_steps=10_000, weight_decay=0.1),
    augment=AugmentSpec(crop="resized", flip=True, randaug_num_ops=2, randaug_magnitude=15,
                        mixup_alpha=0.5),
    batch_size=4096, num_steps=300 * 1_281_167 // 4096, log_every=100, eval_every=5000,
    checkpoint_every=2000,
)

# Mixer fine-tuning, Supp. C and the official defaults: momentum SGD (0.9), batch 512,
# lr 0.03, 500 warmup steps then cosine, clipping at 1, no weight decay, 10k steps (CIFAR).
MIXER_FINETUNE_CIFAR10 = TrainConfig(
    model=ModelSpec("mixer_b16", pretrained=None),
    data=DataSpec("cifar10"),
    optim=OptimSpec("sgd", 0.03, "cosine", warmup_steps=500, momentum=0.9),
    augment=AugmentSpec(crop="resized", flip=True),
    batch_size=512, num_steps=10_000, log_every=100, eval_every=2000, checkpoint_every=2000,
)

# ResMLP, Sec. 4: LAMB, lr 5e-3, weight decay 0.2, batch 2048, cosine with 5 warmup epochs,
# 400 epochs, label smoothing 0.1, DeiT augmentation (RandAugment m9, mixup 0.8, cutmix 1.0),
# stochastic depth 0.05 for S12. deit clips no gradients.
RESMLP_IMAGENET = TrainConfig(
    model=ModelSpec("resmlp_s12", stoch_depth=0.05),
    data=DataSpec("imagenet", eval_split="validation"),
    optim=OptimSpec("lamb", 5e-3, "cosine", warmup_steps=5 * 1_281_167 // 2048,
                    weight_decay=0.2, grad_clip_norm=0.0),
    augment=AugmentSpec(crop="resized", flip=True, randaug_num_ops=2, randaug_magnitude=9,
                        mixup_alpha=0.8, cutmix_alpha=1.0),
    batch_size=2048, num_steps=400 * 1_281_167 // 2048, label_smoothing=0.1, log_every=100,
    eval_every=5000, checkpoint_every=2000,
)

# --- course presets -------------------------------------------------------------------------

# Seconds on a CPU: the tiny Mixer on generated data, the pretraining optimizer.
SMOKE = TrainConfig(
    model=ModelSpec("mixer_tiny"),
    data=DataSpec("synthetic"),
    optim=OptimSpec("adam", 3e-3, "linear", warmup_steps=5, weight_decay=0.01),
    batch_size=32, num_steps=30, log_every=5, eval_every=30, checkpoint_every=10,
    eval_batch_size=64,
)

# The offline sets: minutes on a laptop CPU, seconds on a chip.
DIGITS_MIXER = _replace(
    SMOKE, data={"dataset": "digits"}, augment=AugmentSpec(crop="pad", crop_padding=2),
    batch_size=128, num_steps=600, log_every=20, eval_every=200, checkpoint_every=200,
    eval_batch_size=256, optim={"warmup_steps": 50},
)
SHAPES_MIXER = _replace(DIGITS_MIXER, data={"dataset": "shapes"},
                        augment={"flip": True, "crop_padding": 4})
# Fashion-MNIST (60,000 real 28×28 photos) at its own size: 7×7 patches of 4×4 pixels. The
# chapters' shared recipe, for the Mixer, ResMLP and the CNN baseline alike.
FASHION_MNIST_MIXER = _replace(
    DIGITS_MIXER, model=ModelSpec("mixer_tiny", image_size=28),
    data={"dataset": "fashion_mnist"}, augment={"flip": True, "crop_padding": 2},
    num_steps=1000, eval_every=250, checkpoint_every=250,
)
# Chapter 05's comparison and data-scale sweep: the recipe above without augmentation, so
# that every model learns from the training images alone, as in the paper's JFT-300M
# pretraining (Table 4: no RandAugment, mixup, dropout or stochastic depth); shifts would
# also hand the Mixer the translation invariance that the CNN has built in. Without
# augmentation the models fit faster: with a larger learning rate, 4,000 steps (8.5 epochs)
# come within 0.6 points of the test accuracy of twice the steps (benchmarks/README.md).
FASHION_MNIST_SWEEP = _replace(
    FASHION_MNIST_MIXER, augment=AugmentSpec(), optim={"learning_rate": 1e-2},
    num_steps=4000, log_every=100, eval_every=500, checkpoint_every=1000,
)

# Reduced-scale pretraining on one chip: the Table 4 recipe shortened, with the course models.
CIFAR10_MIXER = _replace(
    MIXER_IMAGENET,
    model=ModelSpec("mixer_course32", stoch_depth=0.1),
    data=DataSpec("cifar10"),
    optim={"learning_rate": 1e-3, "warmup_steps": 500, "weight_decay": 0.1},
    augment=AugmentSpec(crop="pad", flip=True, randaug_num_ops=2, randaug_magnitude=10,
                        mixup_alpha=0.2),
    batch_size=512, num_steps=100 * 50_000 // 512, eval_every=1000, checkpoint_every=1000,
)
TINY_IMAGENET_MIXER = _replace(
    CIFAR10_MIXER, model=ModelSpec("mixer_course64", stoch_depth=0.1),
    data=DataSpec("tiny_imagenet", eval_split="validation"),
    augment={"crop": "resized"}, num_steps=60 * 100_000 // 512,
)
# ResMLP at course scale: LAMB recipe, DeiT augmentation at reduced strength.
CIFAR10_RESMLP = _replace(
    RESMLP_IMAGENET, model=ModelSpec("resmlp_course32", stoch_depth=0.05),
    data=DataSpec("cifar10"),
    optim={"warmup_steps": 500},
    augment=AugmentSpec(crop="pad", flip=True, randaug_num_ops=2, randaug_magnitude=6,
                        mixup_alpha=0.2, cutmix_alpha=0.0),
    batch_size=512, num_steps=100 * 50_000 // 512, eval_every=1000, checkpoint_every=1000,
)

# Fine-tuning presets (set model.pretrained to a workdir): the Supp. C recipe, shortened.
FINETUNE_CIFAR10 = _replace(
    MIXER_FINETUNE_CIFAR10, model=ModelSpec("mixer_course64"),
    optim={"warmup_steps": 100}, batch_size=512, num_steps=2000, eval_every=500,
    checkpoint_every=500,
)
FINETUNE_DIGITS = _replace(
    FINETUNE_CIFAR10, model=ModelSpec("mixer_tiny"), data=DataSpec("digits"),
    augment=AugmentSpec(), optim={"warmup_steps": 20, "learning_rate": 0.01},
    batch_size=128, num_steps=200, log_every=20, eval_every=100, checkpoint_every=100,
)

RECIPES: dict[str, TrainConfig] = {
    "smoke": SMOKE,
    "digits_mixer": DIGITS_MIXER,
    "shapes_mixer": SHAPES_MIXER,
    "fashion_mnist_mixer": FASHION_MNIST_MIXER,
    "fashion_mnist_sweep": FASHION_MNIST_SWEEP,
    "cifar10_mixer": CIFAR10_MIXER,
    "tiny_imagenet_mixer": TINY_IMAGENET_MIXER,
    "cifar10_resmlp": CIFAR10_RESMLP,
    "finetune_cifar10": FINETUNE_CIFAR10,
    "finetune_digits": FINETUNE_DIGITS,
    "mixer_imagenet": MIXER_IMAGENET,
    "mixer_finetune_cifar10": MIXER_FINETUNE_CIFAR10,
    "resmlp_imagenet": RESMLP_IMAGENET,
}


def list_recipes() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        close = difflib.get_close_matches(name, RECIPES, n=3)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(f"Unknown recipe {name!r}.{hint} Known recipes: {', '.join(RECIPES)}, "
                         "or a path to a .json config file.")
    return RECIPES[name]


# --- dicts, files and overrides ---------------------------------------------------------------

def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Sets the nested ``values`` on ``base`` (default: the dataclass defaults)."""
    values = {k: v for k, v in values.items() if not k.startswith("_")}  # comments
    if "base" in values:
        base = get_recipe(values.pop("base"))
    config = base or TrainConfig()
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    for key, value in flat.items():
        config = set_value(config, key, value)
    return config.validate()


def load_config(name_or_path: str) -> TrainConfig:
    """A registered recipe by name, or a JSON file (see the module docstring)."""
    if name_or_path.endswith(".json") or os.path.sep in name_or_path:
        with open(name_or_path) as f:
            return from_dict(json.load(f))
    return get_recipe(name_or_path)


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse(text: Any, kind: Any, key: str) -> Any:
    """Parses ``text`` as ``kind``; JSON values pass through after a type check."""
    if isinstance(kind, types.UnionType):  # only ``X | None`` is used
        if text is None or (isinstance(text, str) and text.lower() in ("none", "null")):
            return None
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
    if kind is bool:
        if isinstance(text, bool):
            return text
        if str(text).lower() in ("true", "1", "yes"):
            return True
        if str(text).lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{key} expects a bool (true/false), got {text!r}.")
    try:
        if kind is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return kind(text)
    except (TypeError, ValueError):
        raise ValueError(f"{key} expects {kind.__name__}, got {text!r}.") from None


def _valid_keys(cls, prefix: str = "") -> list[str]:
    keys = []
    for name, kind in _field_types(cls).items():
        if dataclasses.is_dataclass(kind):
            keys += _valid_keys(kind, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def set_value(config: Any, key: str, value: Any, _prefix: str = "") -> Any:
    """Returns ``config`` with the dotted ``key`` set to ``value`` (parsed to its type)."""
    head, _, rest = key.partition(".")
    full_key = _prefix + key
    kinds = _field_types(type(config))
    if head not in kinds or bool(rest) != dataclasses.is_dataclass(kinds[head]):
        valid = _valid_keys(TrainConfig)
        close = difflib.get_close_matches(full_key, valid, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown config key {full_key!r}.{hint} Valid keys: {', '.join(valid)}.")
    if rest:
        value = set_value(getattr(config, head), rest, value, f"{_prefix}{head}.")
    else:
        value = _parse(value, kinds[head], full_key)
    return dataclasses.replace(config, **{head: value})


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Applies ``key=value`` strings, e.g. ``["optim.learning_rate=3e-3", "num_steps=50"]``."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Overrides look like key=value, got {item!r}.")
        config = set_value(config, key.strip(), value.strip())
    return config.validate()
