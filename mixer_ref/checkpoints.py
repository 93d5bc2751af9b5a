"""Loading and saving checkpoints: ``.npz``, ``.pth``/``.pt`` and ``.safetensors``.

Reads the official releases (MLP-Mixer ``.npz`` from google-research/vision_transformer
and big_vision, ResMLP ``.pth`` from deit), timm's state_dicts and our own files, in any
layout of ``mixer_ref.interop``. Unlike the official ``load_pretrained``, every shape is
checked, and a mismatch is one ``ValueError`` that lists what was expected and given.

Loading validates before it reads: the format is recognised from the file's first bytes
(an ``.npz`` named ``.pth`` is named as such), each weight's dtype must be floating, and
the keys, shapes and declared sizes are checked from the headers before any array is read
or inflated (an ``.npz`` member's declared size must match its header, and the total must
stay under :data:`MAX_BYTES`). ``save_checkpoint`` writes a sidecar ``<file>.sha256``; when
it is present, loading verifies it. Every failure to read is one ``ValueError`` naming the
file. ``save_checkpoint`` replaces a file whole (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
import pickle
import zipfile
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


MAX_BYTES = 4 << 30  # above every released model (Mixer-H/14 with a 21k-class head: 1.8 GB)
FORMAT_NAMES = {".npz": "NumPy .npz archive", ".pth": "PyTorch file",
                ".safetensors": "safetensors file"}


def _sniff(path: Path) -> str:
    """The format of ``path`` from its first bytes: ``.npz``, ``.pth`` or ``.safetensors``."""
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise ValueError(f"Cannot read {path}: the file is empty (0 bytes).")
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as error:
            raise ValueError(f"Cannot read {path}: a damaged zip archive ({error}).") from None
        if names and all(n.endswith(".npy") for n in names):
            return ".npz"
        if any(n.endswith("data.pkl") for n in names):
            return ".pth"
        raise ValueError(f"Cannot read {path}: a zip archive that is neither an .npz (.npy "
                         f"members) nor a PyTorch file (data.pkl); members: {names[:5]}.")
    if len(head) == 9 and head[8:9] == b"{":
        return ".safetensors"  # 8-byte header length, then the JSON header
    if head[:1] == b"\x80":
        return ".pth"  # PyTorch's legacy (pickle) format
    raise ValueError(f"Cannot read {path}: its first bytes {head!r} are not those of an .npz, "
                     ".pth/.pt or .safetensors file.")


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify_sidecar(path: Path) -> None:
    """Raises ``ValueError`` if ``path`` has a ``.sha256`` sidecar that its digest differs
    from; a file without a sidecar passes."""
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        return
    expected = sidecar.read_text().split()[:1]
    actual = sha256_of(path)
    if expected != [actual]:
        raise ValueError(f"{path} is damaged: its SHA-256 is {actual}, but {sidecar.name} "
                         f"records {expected[0] if expected else 'nothing'}. Download or copy "
                         "the file again.")


def _check_dtype(path: Path, key: str, dtype: str, floating: bool) -> None:
    if not floating:
        raise ValueError(f"{path}: weight {key!r} has dtype {dtype}; expected floating-point "
                         "weights (float16, bfloat16, float32 or float64).")


def _npz_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, dtype)}`` of an .npz from each member's .npy header, inflating
    nothing else; each member's declared size must equal the size its header describes."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f, max_header_size=10_000)
                header = f.tell()
            if dtype.hasobject:
                raise ValueError(f"Cannot read {path} without unpickling objects "
                                 f"(np.load(allow_pickle=False)): {key!r} holds objects.")
            _check_dtype(path, key, str(dtype), np.issubdtype(dtype, np.floating))
            size = header + math.prod(shape) * dtype.itemsize
            if info.file_size != size:
                raise ValueError(f"{path} is damaged: member {info.filename!r} declares "
                                 f"{info.file_size} bytes, but its header describes {size} "
                                 f"(shape {shape}, {dtype}).")
            out[key] = (shape, str(dtype))
    return out


def _safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    from safetensors import safe_open

    out = {}
    with safe_open(path, framework="np") as f:
        for key in f.keys():
            tensor = f.get_slice(key)
            dtype = tensor.get_dtype()
            _check_dtype(path, key, dtype, dtype in ("F16", "F32", "F64"))
            out[key] = (tuple(tensor.get_shape()), dtype)
    return out


def _torch_state(path: Path) -> dict:
    """The state_dict of a .pth, memory-mapped where the format allows (nothing is read)."""
    import torch

    archive = zipfile.is_zipfile(path)  # the legacy (pickle) format has no CRCs, no mmap
    if archive:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # torch.load does not check the records' CRC-32
        if bad is not None:
            raise ValueError(f"{path} is damaged: record {bad!r} fails its CRC-32 check.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=archive)
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
    for key, value in state.items():
        _check_dtype(path, key, str(value.dtype).removeprefix("torch."),
                     value.is_floating_point())
    return dict(state)


class _Reader:
    """A checkpoint file opened for its header; :meth:`arrays` then reads the weights."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        suffix = _suffix(path)
        verify_sidecar(path)
        self.format = _sniff(path)
        if self.format != {".pt": ".pth"}.get(suffix, suffix):
            raise ValueError(f"{path} is a {FORMAT_NAMES[self.format]}, not the "
                             f"{FORMAT_NAMES[{'.pt': '.pth'}.get(suffix, suffix)]} its suffix "
                             f"says; rename it to end in {self.format}.")
        if self.format == ".pth":
            self.state = _torch_state(path)
            self.header = {k: (tuple(v.shape), str(v.dtype)) for k, v in self.state.items()}
        elif self.format == ".npz":
            self.header = _npz_header(path)
        else:
            self.header = _safetensors_header(path)
        total = sum(math.prod(shape) for shape, _ in self.header.values()) * 4
        if total > max_bytes:
            raise ValueError(f"{path} declares {total / 2**30:.1f} GiB of float32 weights, "
                             f"more than the {max_bytes / 2**30:.1f} GiB limit (max_bytes).")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: shape for k, (shape, _) in self.header.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        if self.format == ".pth":
            import torch

            return {k: v.detach().to(torch.float32).numpy() for k, v in self.state.items()}
        if self.format == ".npz":
            with np.load(self.path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        from safetensors.numpy import load_file

        return load_file(self.path)


def _open(path: str | Path, max_bytes: int = MAX_BYTES) -> _Reader:
    """Opens ``path``; any error of the underlying libraries becomes one ``ValueError``."""
    path = Path(path)
    try:
        return _Reader(path, max_bytes)
    except (ValueError, FileNotFoundError, IsADirectoryError):
        raise
    except Exception as error:  # noqa: BLE001 (zipfile, numpy, torch, safetensors internals)
        raise ValueError(f"Cannot read {path}: {_describe(error)}") from None


def _read_arrays(reader: _Reader) -> dict[str, np.ndarray]:
    try:
        return reader.arrays()
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Cannot read {reader.path}: {_describe(error)}") from None


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else 'the file is truncated or empty'}"


def read_state(path: str | Path, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """The flat ``{key: array}`` dict stored in ``path``, without unpickling any object.

    A ``.pth`` whose top level holds ``model`` or ``state_dict`` (as deit's do) is unwrapped.
    Weights must be floating point; they are returned as stored (``.pth``: as float32).
    """
    return _read_arrays(_open(path, max_bytes))


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
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(
            num_classes, numbers.Integral) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if _is_workdir(path):
        return _load_workdir(path, framework, name, num_classes)
    reader = _open(path)
    layout = interop.detect_layout(reader.shapes)
    shapes = reader.shapes
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
    state = _read_arrays(reader)
    return _build(config, interop.to_canonical(state, layout), framework,
                  None if num_classes is None else int(num_classes))


def _is_workdir(path) -> bool:
    """Whether ``path`` is a training workdir (it holds ``model.json``); URLs such as
    ``gs://`` go through the training path layer."""
    if "://" in os.fspath(path):
        from mixer_ref.train.workdir import MODEL_FILE
        from mixer_ref.train.workdir import path as workdir_path

        return (workdir_path(path) / MODEL_FILE).is_file()
    return (Path(path) / "model.json").is_file()


def _load_workdir(workdir, framework: str, name: str | None, num_classes: int | None):
    """The latest checkpoint of a ``mixer_ref.train`` workdir (Orbax), as a model."""
    from mixer_ref.train.checkpointing import load_workdir

    model = load_workdir(os.fspath(workdir))
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
    """Writes a Flax or torch model's parameters to ``path`` (.npz, .pth/.pt, .safetensors),
    and their SHA-256 to ``<path>.sha256``.

    The file is written to a temporary file and moved into place with ``os.replace``, so a
    full disk or a kill mid-write leaves the previous file intact.

    ``layout`` is one of ``interop.LAYOUT_NAMES``; by default the official one where the
    suffix is the authors' format (MLP-Mixer ``.npz``, ResMLP deit ``.pth``), otherwise
    ``flax`` for ``.npz`` and ``torch`` for the others. ``load_pretrained`` reads them all.
    """
    path = Path(path)
    suffix = _suffix(path)
    family = model.config.family
    target = interop.get_layout(layout or DEFAULT_LAYOUT[suffix, family], family)
    state = interop.from_canonical(interop.flat_params(model), target)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    sidecar, sidecar_tmp = _sidecar(path), path.with_name(f".{path.name}.sha256.tmp")
    try:
        if suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, **state)
        elif suffix == ".safetensors":
            from safetensors.numpy import save_file

            save_file(state, tmp)
        else:
            import torch

            torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        sidecar_tmp.write_text(f"{sha256_of(tmp)}  {path.name}\n")
        # Without a sidecar a file loads unverified; with a stale one it would not load.
        sidecar.unlink(missing_ok=True)
        os.replace(tmp, path)
        os.replace(sidecar_tmp, sidecar)
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_tmp.unlink(missing_ok=True)
