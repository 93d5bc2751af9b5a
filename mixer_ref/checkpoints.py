"""Loading and saving checkpoints: ``.npz``, ``.pth``/``.pt`` and ``.safetensors``.

Reads the official releases (MLP-Mixer ``.npz`` from google-research/vision_transformer
and big_vision, ResMLP ``.pth`` from deit), timm's state_dicts and our own files, in any
layout of ``mixer_ref.interop``. Unlike the official ``load_pretrained``, every shape is
checked, and a mismatch is one ``ValueError`` that lists what was expected and given.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mixer_ref import interop
from mixer_ref.configs import (
    Config,
    MixerConfig,
    ResMLPConfig,
    get_config,
    layerscale_init_for_depth,
    list_models,
)
from mixer_ref.models import check_framework

SUFFIXES = (".npz", ".pth", ".pt", ".safetensors")

# The layout save_checkpoint writes by default: the official one where the suffix is the
# authors' format (Mixer .npz, ResMLP .pth), else ours for that framework.
DEFAULT_LAYOUT = {
    (".npz", "mixer"): "official",
    (".npz", "resmlp"): "flax",
    (".pth", "mixer"): "torch",
    (".pth", "resmlp"): "official",
    (".pt", "mixer"): "torch",
    (".pt", "resmlp"): "official",
    (".safetensors", "mixer"): "torch",
    (".safetensors", "resmlp"): "torch",
}


def _suffix(path: Path) -> str:
    if path.is_dir():
        raise ValueError(f"Expected a .npz/.pth/.pt/.safetensors file or a training workdir "
                         f"(with model.json), got a directory without model.json: {path}")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"Expected a .npz/.pth/.pt/.safetensors file, got {path.name!r}.")
    return path.suffix


def read_state(path: str | Path) -> dict[str, np.ndarray]:
    """The flat ``{key: array}`` dict stored in ``path``, without unpickling any object.

    A ``.pth`` whose top level holds ``model`` or ``state_dict`` (as deit's do) is unwrapped.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except ValueError as error:
            raise ValueError(f"Cannot read {path} without unpickling objects "
                             f"(np.load(allow_pickle=False)): {error}") from None
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"Refusing to load {path}: torch.load(weights_only=True) accepts "
                         f"tensors only. {reason}") from None
    for wrapper in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"Expected {path} to hold a state_dict of tensors, got "
                         f"{type(state).__name__}.")
    return {k: v.detach().to(torch.float32).numpy() for k, v in state.items()}


def _shape(shapes: Mapping[str, tuple[int, ...]], key: str, rank: int) -> tuple[int, ...]:
    if key not in shapes or len(shapes[key]) != rank:
        got = f"shape {shapes[key]}" if key in shapes else "nothing"
        raise ValueError(f"Cannot infer the architecture: expected a rank-{rank} parameter "
                         f"{key!r} (in our layout), got {got}. Pass name= to load it as a "
                         f"named model.")
    return tuple(shapes[key])


def config_from_shapes(shapes: Mapping[str, tuple[int, ...]], family: str) -> Config:
    """The architecture of ``{key: shape}`` in our layout: P and C from the stem kernel
    (P, P, 3, C), S and D_S from the first token-mixing kernel, image size √S · P, D_C,
    the number of blocks and classes. Named after the registry model it matches, if any
    (ResMLP's LayerScale init is not compared: a checkpoint sets its value)."""
    patch, _, _, hidden = _shape(shapes, "stem/proj/kernel", 4)
    num_classes = _shape(shapes, "head/kernel", 2)[1]
    num_blocks = len({k.split("/")[1] for k in shapes if k.startswith("blocks/")})
    if family == "mixer":
        num_tokens, tokens_mlp = _shape(shapes, "blocks/0/token_mixing/fc1/kernel", 2)
        channels_mlp = _shape(shapes, "blocks/0/channel_mixing/fc1/kernel", 2)[1]
    else:
        num_tokens = _shape(shapes, "blocks/0/linear_tokens/kernel", 2)[0]
        channels_mlp = _shape(shapes, "blocks/0/mlp/fc1/kernel", 2)[1]
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"Cannot infer the architecture: expected a square number of tokens "
                         f"S = (image_size / P)², got S={num_tokens}.")
    image = side * patch
    if family == "mixer":
        config = MixerConfig(f"mixer_p{patch}_c{hidden}_n{num_blocks}_ds{tokens_mlp}"
                             f"_dc{channels_mlp}_{image}px", patch, image, hidden, tokens_mlp,
                             channels_mlp, num_blocks, num_classes)
    else:
        ratio, rest = divmod(channels_mlp, hidden)
        if rest:
            raise ValueError(f"Cannot infer the architecture: expected a channel MLP width "
                             f"that is a multiple of C={hidden}, got {channels_mlp}.")
        config = ResMLPConfig(f"resmlp_p{patch}_c{hidden}_n{num_blocks}_r{ratio}_{image}px",
                              patch, image, hidden, num_blocks,
                              layerscale_init_for_depth(num_blocks), ratio, num_classes)
    for name in list_models():
        known = get_config(name, num_classes=num_classes)
        ignored = {"name": config.name}
        if family == "resmlp":
            ignored["layerscale_init"] = config.layerscale_init
        if known.family == family and dataclasses.replace(known, **ignored) == config:
            return known
    return config


def load_pretrained(path: str | Path, framework: str = "flax", name: str | None = None,
                    num_classes: int | None = None):
    """Loads a checkpoint file, or a training workdir's latest checkpoint, into a new Flax
    (default) or torch model.

    The layout (``interop.LAYOUT_NAMES``) is detected from the keys. With ``name=None`` the
    architecture is inferred from the shapes (``config_from_shapes``); with ``name`` the
    named config is used and checked. The head keeps the checkpoint's number of classes
    unless ``num_classes`` differs from it: then the model gets a fresh zero head (kernel
    and bias), as the official fine-tuning does, for ResMLP too.
    """
    check_framework(framework)
    if (Path(path) / "model.json").is_file():
        return _load_workdir(Path(path), framework, name, num_classes)
    state = read_state(path)
    layout = interop.detect_layout(state)
    shapes = {k: v.shape for k, v in state.items()}
    ours = interop.shapes_to_canonical(shapes, layout)
    if name is None:
        config = config_from_shapes(ours, layout.family)
    else:
        config = get_config(name)
        if config.family != layout.family:
            raise ValueError(f"{path} holds a {layout.family} checkpoint ({layout}), but "
                             f"{name!r} is a {config.family} model.")
        if len(ours.get("head/kernel", ())) == 2:
            config = dataclasses.replace(config, num_classes=ours["head/kernel"][1])
    expected = interop.shapes_from_canonical(interop.param_shapes(config), layout)
    interop.check_fits(shapes, expected, f"Checkpoint {path} ({layout}, loaded as {config.name})")
    return _build(config, interop.to_canonical(state, layout), framework, num_classes)


def _load_workdir(workdir: Path, framework: str, name: str | None, num_classes: int | None):
    """The latest checkpoint of a ``mixer_ref.train`` workdir (Orbax), as a model."""
    from mixer_ref.train.checkpointing import load_workdir

    model = load_workdir(str(workdir))
    config = model.config
    if name is not None and get_config(name).family != config.family:
        raise ValueError(f"{workdir} holds a {config.family} model ({config.name}), but "
                         f"{name!r} is a {get_config(name).family} model.")
    return _build(config, interop.flat_params(model), framework, num_classes)


def _build(config: Config, params: dict[str, np.ndarray], framework: str,
           num_classes: int | None):
    """The model of ``params``; a ``num_classes`` other than the checkpoint's gets a fresh
    zero head."""
    if num_classes is not None and num_classes != config.num_classes:
        config = dataclasses.replace(config, num_classes=num_classes)
        params["head/kernel"] = np.zeros((config.hidden_dim, num_classes), np.float32)
        params["head/bias"] = np.zeros((num_classes,), np.float32)
    return interop.build_with_params(config, params, framework)


def save_checkpoint(model, path: str | Path, layout: str | None = None) -> None:
    """Writes a Flax or torch model's parameters to ``path`` (.npz, .pth/.pt, .safetensors).

    ``layout`` is one of ``interop.LAYOUT_NAMES``; by default the official one where the
    suffix is the authors' format (MLP-Mixer ``.npz``, ResMLP deit ``.pth``), otherwise
    ``flax`` for ``.npz`` and ``torch`` for the others. ``load_pretrained`` reads them all.
    """
    path = Path(path)
    suffix = _suffix(path)
    family = model.config.family
    target = interop.get_layout(layout or DEFAULT_LAYOUT[suffix, family], family)
    state = interop.from_canonical(interop.flat_params(model), target)
    if suffix == ".npz":
        np.savez(path, **state)
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(state, path)
    else:
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
