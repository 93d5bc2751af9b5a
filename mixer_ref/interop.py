"""Parameter layouts: the key mappings between ours, PyTorch, the official releases and timm.

Our layout is the flat dict of the Flax NNX model's parameters, keys joined by "/"
(``blocks/0/token_mixing/fc1/kernel``). Every other layout is a table of rows
(our key pattern, their key pattern, transform), generated from the data tables below;
``{i}`` stands for the block index.

- ``flax``: ours.
- ``torch``: the ``state_dict`` of ``mixer_ref.torch``, whose attribute names are ours.
- ``official``: the authors' releases. MLP-Mixer: the ``.npz`` files of
  google-research/vision_transformer and big_vision (Flax linen auto-names such as
  ``MixerBlock_0/LayerNorm_1``). ResMLP: the deit ``state_dict`` (``resmlp_models.py``,
  where the linear layer across patches is called ``attn``).
- ``timm``: the ``state_dict`` of timm's ``mixer_*`` and ``resmlp_*`` (``mlp_mixer.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from mixer_ref.configs import Config
from mixer_ref.models import build, check_framework, framework_of

FAMILIES = ("mixer", "resmlp")


@dataclasses.dataclass(frozen=True)
class Transform:
    """How an array changes from our layout to another (``to_theirs``) and back."""

    name: str
    to_theirs: Callable[[np.ndarray], np.ndarray]
    to_ours: Callable[[np.ndarray], np.ndarray]


SAME = Transform("same", lambda x: x, lambda x: x)
# Dense kernel (in, out) ↔ nn.Linear weight (out, in).
LINEAR = Transform("linear", lambda x: x.T, lambda x: x.T)
# Conv kernel (P, P, 3, C), i.e. HWIO ↔ nn.Conv2d weight (C, 3, P, P), i.e. OIHW.
CONV = Transform("conv", lambda x: x.transpose(3, 2, 0, 1), lambda x: x.transpose(2, 3, 1, 0))
# Affine vector (C,) ↔ timm's broadcastable (1, 1, C).
ROW = Transform("row", lambda x: x.reshape(1, 1, -1), lambda x: x.reshape(-1))

# The parameters of each kind of module: (our leaf, their leaf, transform). A "param" is a
# bare parameter such as LayerScale's gamma_1, whose module path is its key.
FLAX_LEAVES = {
    "conv": (("kernel", "kernel", SAME), ("bias", "bias", SAME)),
    "dense": (("kernel", "kernel", SAME), ("bias", "bias", SAME)),
    "layernorm": (("scale", "scale", SAME), ("bias", "bias", SAME)),
    "affine": (("alpha", "alpha", SAME), ("beta", "beta", SAME)),
    "param": (("", "", SAME),),
}
TORCH_LEAVES = {
    "conv": (("kernel", "weight", CONV), ("bias", "bias", SAME)),
    "dense": (("kernel", "weight", LINEAR), ("bias", "bias", SAME)),
    "layernorm": (("scale", "weight", SAME), ("bias", "bias", SAME)),
    "affine": (("alpha", "alpha", SAME), ("beta", "beta", SAME)),
    "param": (("", "", SAME),),
}
TIMM_LEAVES = {**TORCH_LEAVES, "affine": (("alpha", "alpha", ROW), ("beta", "beta", ROW))}

# Our modules, in model order, and their kinds.
MODULES = {
    "mixer": {
        "stem/proj": "conv",
        "blocks/{i}/norm1": "layernorm",
        "blocks/{i}/token_mixing/fc1": "dense",
        "blocks/{i}/token_mixing/fc2": "dense",
        "blocks/{i}/norm2": "layernorm",
        "blocks/{i}/channel_mixing/fc1": "dense",
        "blocks/{i}/channel_mixing/fc2": "dense",
        "pre_head_layer_norm": "layernorm",
        "head": "dense",
    },
    "resmlp": {
        "stem/proj": "conv",
        "blocks/{i}/norm1": "affine",
        "blocks/{i}/linear_tokens": "dense",
        "blocks/{i}/gamma_1": "param",
        "blocks/{i}/norm2": "affine",
        "blocks/{i}/mlp/fc1": "dense",
        "blocks/{i}/mlp/fc2": "dense",
        "blocks/{i}/gamma_2": "param",
        "norm": "affine",
        "head": "dense",
    },
}

# The foreign layouts' names for our modules.
MODULE_NAMES = {
    ("official", "mixer"): {
        "stem/proj": "stem",
        "blocks/{i}/norm1": "MixerBlock_{i}/LayerNorm_0",
        "blocks/{i}/token_mixing/fc1": "MixerBlock_{i}/token_mixing/Dense_0",
        "blocks/{i}/token_mixing/fc2": "MixerBlock_{i}/token_mixing/Dense_1",
        "blocks/{i}/norm2": "MixerBlock_{i}/LayerNorm_1",
        "blocks/{i}/channel_mixing/fc1": "MixerBlock_{i}/channel_mixing/Dense_0",
        "blocks/{i}/channel_mixing/fc2": "MixerBlock_{i}/channel_mixing/Dense_1",
        "pre_head_layer_norm": "pre_head_layer_norm",
        "head": "head",
    },
    ("official", "resmlp"): {
        "stem/proj": "patch_embed.proj",
        "blocks/{i}/norm1": "blocks.{i}.norm1",
        "blocks/{i}/linear_tokens": "blocks.{i}.attn",
        "blocks/{i}/gamma_1": "blocks.{i}.gamma_1",
        "blocks/{i}/norm2": "blocks.{i}.norm2",
        "blocks/{i}/mlp/fc1": "blocks.{i}.mlp.fc1",
        "blocks/{i}/mlp/fc2": "blocks.{i}.mlp.fc2",
        "blocks/{i}/gamma_2": "blocks.{i}.gamma_2",
        "norm": "norm",
        "head": "head",
    },
    ("timm", "mixer"): {
        "stem/proj": "stem.proj",
        "blocks/{i}/norm1": "blocks.{i}.norm1",
        "blocks/{i}/token_mixing/fc1": "blocks.{i}.mlp_tokens.fc1",
        "blocks/{i}/token_mixing/fc2": "blocks.{i}.mlp_tokens.fc2",
        "blocks/{i}/norm2": "blocks.{i}.norm2",
        "blocks/{i}/channel_mixing/fc1": "blocks.{i}.mlp_channels.fc1",
        "blocks/{i}/channel_mixing/fc2": "blocks.{i}.mlp_channels.fc2",
        "pre_head_layer_norm": "norm",
        "head": "head",
    },
    ("timm", "resmlp"): {
        "stem/proj": "stem.proj",
        "blocks/{i}/norm1": "blocks.{i}.norm1",
        "blocks/{i}/linear_tokens": "blocks.{i}.linear_tokens",
        "blocks/{i}/gamma_1": "blocks.{i}.ls1",
        "blocks/{i}/norm2": "blocks.{i}.norm2",
        "blocks/{i}/mlp/fc1": "blocks.{i}.mlp_channels.fc1",
        "blocks/{i}/mlp/fc2": "blocks.{i}.mlp_channels.fc2",
        "blocks/{i}/gamma_2": "blocks.{i}.ls2",
        "norm": "norm",
        "head": "head",
    },
}
# Our torch modules have the Flax modules' attribute names.
MODULE_NAMES |= {("flax", family): {m: m for m in modules}
                 for family, modules in MODULES.items()}
MODULE_NAMES |= {("torch", family): {m: m.replace("/", ".") for m in modules}
                 for family, modules in MODULES.items()}

# Each layout's leaf names and key separator.
LEAF_STYLE = {
    ("flax", "mixer"): (FLAX_LEAVES, "/"),
    ("flax", "resmlp"): (FLAX_LEAVES, "/"),
    ("torch", "mixer"): (TORCH_LEAVES, "."),
    ("torch", "resmlp"): (TORCH_LEAVES, "."),
    ("official", "mixer"): (FLAX_LEAVES, "/"),
    ("official", "resmlp"): (TORCH_LEAVES, "."),
    ("timm", "mixer"): (TIMM_LEAVES, "."),
    ("timm", "resmlp"): (TIMM_LEAVES, "."),
}
LAYOUT_NAMES = ("flax", "torch", "official", "timm")


@dataclasses.dataclass(frozen=True)
class Row:
    """One parameter: our key pattern, their key pattern, and the transform between them."""

    ours: str
    theirs: str
    transform: Transform


@functools.cache
def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)"))


def _rename(key: str, source: str, target: str) -> str | None:
    match = _pattern(source).fullmatch(key)
    if match is None:
        return None
    return target.format(i=match["i"]) if "{i}" in source else target


@dataclasses.dataclass(frozen=True)
class Layout:
    """A parameter layout (``name``) of one model family, as a table of rows."""

    name: str
    family: str
    rows: tuple[Row, ...]

    def theirs(self, key: str) -> tuple[str, Transform] | None:
        """Their key for our ``key`` and the transform, or None if no row matches."""
        for row in self.rows:
            if (theirs := _rename(key, row.ours, row.theirs)) is not None:
                return theirs, row.transform
        return None

    def ours(self, key: str) -> tuple[str, Transform] | None:
        """Our key for their ``key`` and the transform, or None if no row matches."""
        for row in self.rows:
            if (ours := _rename(key, row.theirs, row.ours)) is not None:
                return ours, row.transform
        return None

    def __str__(self) -> str:
        return f"{self.name} {self.family} layout"


def _make_layout(name: str, family: str) -> Layout:
    leaves, sep = LEAF_STYLE[name, family]
    names = MODULE_NAMES[name, family]
    rows = tuple(
        Row("/".join(filter(None, (module, our_leaf))),
            sep.join(filter(None, (names[module], their_leaf))), transform)
        for module, kind in MODULES[family].items()
        for our_leaf, their_leaf, transform in leaves[kind]
    )
    return Layout(name, family, rows)


LAYOUTS = {key: _make_layout(*key) for key in LEAF_STYLE}


def get_layout(name: str, family: str) -> Layout:
    """The layout called ``name`` (one of ``LAYOUT_NAMES``) for ``family``."""
    if (name, family) not in LAYOUTS:
        raise ValueError(f"Unknown layout {name!r} for family {family!r}: expected one of "
                         f"{LAYOUT_NAMES} and one of {FAMILIES}.")
    return LAYOUTS[name, family]


def detect_layout(keys: Iterable[str]) -> Layout:
    """The layout whose table matches the most of ``keys``."""
    keys = list(keys)
    scores = {layout: sum(layout.ours(k) is not None for k in keys) for layout in LAYOUTS.values()}
    best = max(scores.values())
    winners = [str(layout) for layout, score in scores.items() if score == best]
    if best == 0:
        raise ValueError(f"Unrecognised parameter layout: no key matches a known layout "
                         f"{LAYOUT_NAMES}; first keys: {_listing(keys)}.")
    if len(winners) > 1:
        raise ValueError(f"Ambiguous parameter layout: the keys fit {' and '.join(winners)} "
                         f"equally; first keys: {_listing(keys)}.")
    return max(scores, key=scores.get)


def _listing(items: list, limit: int = 10) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _translate(items: Mapping, layout: Layout, *, to_ours: bool) -> tuple[dict, list[str]]:
    """Renames and transforms ``items`` by the table; also returns the keys no row matches."""
    out, unknown = {}, []
    for key, value in items.items():
        match = layout.ours(key) if to_ours else layout.theirs(key)
        if match is None:
            unknown.append(key)
            continue
        new_key, transform = match
        try:
            out[new_key] = (transform.to_ours if to_ours else transform.to_theirs)(value)
        except ValueError:
            raise ValueError(f"{key!r} has shape {tuple(value.shape)}, which a "
                             f"{transform.name} parameter cannot have.") from None
    return out, unknown


def _strict(result: tuple[dict, list[str]], layout: Layout) -> dict:
    out, unknown = result
    if unknown:
        raise ValueError(f"{len(unknown)} key(s) not in the {layout}: {_listing(unknown)}.")
    return out


def to_canonical(state: Mapping[str, np.ndarray], layout: Layout) -> dict[str, np.ndarray]:
    """Maps a flat dict in ``layout`` to ours; raises ``ValueError`` on keys no row knows."""
    return _strict(_translate({k: np.asarray(v) for k, v in state.items()}, layout,
                              to_ours=True), layout)


def from_canonical(params: Mapping[str, np.ndarray], layout: Layout) -> dict[str, np.ndarray]:
    """Maps our flat dict to ``layout``, as C-contiguous arrays (which safetensors needs)."""
    out = _strict(_translate({k: np.asarray(v) for k, v in params.items()}, layout,
                             to_ours=False), layout)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _dummy(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.float32(0), shape)  # a shape that holds no memory


def shapes_to_canonical(shapes: Mapping[str, tuple[int, ...]], layout: Layout
                        ) -> dict[str, tuple[int, ...]]:
    """Our keys and shapes for the keys of ``shapes`` (in ``layout``) that the table knows;
    it leaves the others out, for ``check_fits`` to report."""
    out, _ = _translate({k: _dummy(s) for k, s in shapes.items()}, layout, to_ours=True)
    return {k: v.shape for k, v in out.items()}


def shapes_from_canonical(shapes: Mapping[str, tuple[int, ...]], layout: Layout
                          ) -> dict[str, tuple[int, ...]]:
    """Our ``{key: shape}`` renamed and reshaped into ``layout``."""
    out = _strict(_translate({k: _dummy(s) for k, s in shapes.items()}, layout,
                             to_ours=False), layout)
    return {k: v.shape for k, v in out.items()}


def check_fits(given: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
               source: str) -> None:
    """Raises one ``ValueError`` listing missing keys, unexpected keys and shape mismatches
    (expected vs given) of ``given`` against ``expected``, both ``{key: shape}``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [f"{k}: expected {tuple(expected[k])}, got {tuple(given[k])}"
                  for k in expected if k in given and tuple(given[k]) != tuple(expected[k])]
    problems = [f"  {title} ({len(items)}): {_listing(items)}"
                for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("shape mismatches", mismatched)) if items]
    if problems:
        raise ValueError(f"{source} does not fit the model:\n" + "\n".join(problems))


def param_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Our keys and parameter shapes for ``config``, without initialising anything."""
    from flax import nnx

    return flat_params(nnx.eval_shape(lambda: build(config, "flax")), shapes_only=True)


def flat_params(model, *, shapes_only: bool = False) -> dict:
    """A Flax or torch model's parameters in our layout, as NumPy copies (or their shapes)."""
    if framework_of(model) == "torch":
        layout = get_layout("torch", model.config.family)
        state = model.state_dict()
        if shapes_only:
            return shapes_to_canonical({k: tuple(v.shape) for k, v in state.items()}, layout)
        return to_canonical({k: v.detach().cpu().numpy().copy() for k, v in state.items()},
                            layout)
    from flax import nnx

    return {"/".join(map(str, path)): var.shape if shapes_only else np.array(var.get_value())
            for path, var in nnx.iter_graph(model) if isinstance(var, nnx.Param)}


def build_with_params(config: Config, params: Mapping[str, np.ndarray], framework: str):
    """Builds ``config`` in ``framework`` holding ``params`` (ours, copied as float32).

    Nothing is initialised at random: the Flax model comes from ``nnx.eval_shape``, its
    dropout streams reseeded with ``nnx.reseed(dropout=1)``; the torch model from the meta
    device.
    """
    check_framework(framework)
    if framework == "flax":
        from flax import nnx

        model = nnx.eval_shape(lambda: build(config, "flax"))
    else:
        import torch

        with torch.device("meta"):
            model = build(config, "torch")
    check_fits({k: np.shape(v) for k, v in params.items()}, flat_params(model, shapes_only=True),
               f"The parameter dict given for {config.name}")
    if framework == "flax":
        import jax.numpy as jnp

        nnx.reseed(model, dropout=1)
        for path, var in nnx.iter_graph(model):
            if isinstance(var, nnx.Param):
                var.set_value(jnp.array(params["/".join(map(str, path))], jnp.float32))
        return model
    state = from_canonical(params, get_layout("torch", config.family))
    model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32, order="C"))
                           for k, v in state.items()}, strict=True, assign=True)
    return model


def convert(model, to: str):
    """A new model in framework ``to`` ("flax" or "torch") with ``model``'s config and
    weights. Flax takes NHWC images and torch NCHW."""
    check_framework(to)
    return build_with_params(model.config, flat_params(model), to)
