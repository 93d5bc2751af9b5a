"""Model configurations: the papers' variants and small course variants.

MLP-Mixer variants follow Table 1 of Tolstikhin et al. (2021); ResMLP variants follow
Table 3 of Touvron et al. (2021) and the released deit code (``resmlp_models.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any

IN_CHANNELS = 3


@dataclasses.dataclass(frozen=True)
class MixerConfig:
    """MLP-Mixer hyperparameters (Tolstikhin et al., 2021, Table 1).

    ``tokens_mlp_dim`` is D_S and ``channels_mlp_dim`` is D_C. ``stoch_depth`` is the drop
    probability s of the last block; block i drops with probability s * i / (N - 1).
    """

    name: str
    patch_size: int
    image_size: int
    hidden_dim: int
    tokens_mlp_dim: int
    channels_mlp_dim: int
    num_blocks: int
    num_classes: int = 1000
    dropout: float = 0.0
    stoch_depth: float = 0.0

    family = "mixer"

    @property
    def num_tokens(self) -> int:
        """S = HW / P²."""
        return (self.image_size // self.patch_size) ** 2

    def drop_path_rates(self) -> list[float]:
        """Stochastic depth rising linearly from 0 at the first block to s at the last."""
        n = self.num_blocks
        return [self.stoch_depth * i / max(n - 1, 1) for i in range(n)]


@dataclasses.dataclass(frozen=True)
class ResMLPConfig:
    """ResMLP hyperparameters (Touvron et al., 2021, Sec. 2 and Table 3).

    ``layerscale_init`` is the initial value ε of the LayerScale vectors; ``stoch_depth``
    is the drop-path rate, the same in every block as in the deit code.
    """

    name: str
    patch_size: int
    image_size: int
    hidden_dim: int
    num_blocks: int
    layerscale_init: float
    mlp_ratio: int = 4
    num_classes: int = 1000
    dropout: float = 0.0
    stoch_depth: float = 0.0

    family = "resmlp"

    @property
    def num_tokens(self) -> int:
        """S = HW / P²."""
        return (self.image_size // self.patch_size) ** 2

    def drop_path_rates(self) -> list[float]:
        return [self.stoch_depth] * self.num_blocks


Config = MixerConfig | ResMLPConfig


def layerscale_init_for_depth(num_blocks: int) -> float:
    """ResMLP paper, Sec. 3: ε = 0.1 up to 12 blocks, 1e-5 up to 24, 1e-6 beyond."""
    if num_blocks <= 12:
        return 0.1
    if num_blocks <= 24:
        return 1e-5
    return 1e-6


def _mixer(name, patch, hidden, tokens_mlp, channels_mlp, blocks, image=224, classes=1000):
    return MixerConfig(name, patch, image, hidden, tokens_mlp, channels_mlp, blocks, classes)


def _resmlp(name, patch, hidden, blocks, image=224, classes=1000, layerscale_init=None):
    if layerscale_init is None:
        layerscale_init = layerscale_init_for_depth(blocks)
    return ResMLPConfig(name, patch, image, hidden, blocks, layerscale_init, 4, classes)


_REGISTRY: dict[str, Config] = {
    c.name: c
    for c in [
        # MLP-Mixer, Table 1 (224×224 input).
        _mixer("mixer_s32", 32, 512, 256, 2048, 8),
        _mixer("mixer_s16", 16, 512, 256, 2048, 8),
        _mixer("mixer_b32", 32, 768, 384, 3072, 12),
        _mixer("mixer_b16", 16, 768, 384, 3072, 12),
        _mixer("mixer_l32", 32, 1024, 512, 4096, 24),
        _mixer("mixer_l16", 16, 1024, 512, 4096, 24),
        _mixer("mixer_h14", 14, 1280, 640, 5120, 32),
        # ResMLP, Table 3. B24/8 is the released model; deit initialises its LayerScale
        # at 1e-6 (``resmlpB_24``), not the paper's 1e-5 for 24 blocks.
        _resmlp("resmlp_s12", 16, 384, 12),
        _resmlp("resmlp_s24", 16, 384, 24),
        _resmlp("resmlp_s36", 16, 384, 36),
        _resmlp("resmlp_b24", 16, 768, 24),
        _resmlp("resmlp_b24_8", 8, 768, 24, layerscale_init=1e-6),
        # Course variants: small models for 32×32 and 64×64 images that train on one
        # Colab TPU chip in minutes. Ratios D_S = C/2 and D_C = 4C as in Table 1.
        _mixer("mixer_course32", 4, 256, 128, 1024, 8, image=32, classes=10),
        _mixer("mixer_course64", 8, 256, 128, 1024, 8, image=64, classes=200),
        _mixer("mixer_tiny", 4, 64, 32, 256, 2, image=32, classes=10),
        _resmlp("resmlp_course32", 4, 256, 12, image=32, classes=10),
        _resmlp("resmlp_course64", 8, 256, 12, image=64, classes=200),
        _resmlp("resmlp_tiny", 4, 64, 2, image=32, classes=10),
    ]
}

# The papers' spellings: "Mixer-B/16", "ResMLP-S12", "ResMLP-B24/8", ...
_PAPER_NAME = re.compile(r"^(mixer|resmlp)[-_]?([a-z]+)(\d*)(?:[/_](\d+))?$")


def canonical_name(name: str) -> str:
    """Maps a paper spelling such as ``Mixer-B/16`` or ``ResMLP-B24/8`` to a registry key."""
    key = name.strip().lower().replace(" ", "")
    if key in _REGISTRY:
        return key
    m = _PAPER_NAME.match(key)
    if m:
        family, size, depth, patch = m.groups()
        if family == "mixer":
            key = f"mixer_{size}{depth}{patch or ''}"
        else:
            key = f"resmlp_{size}{depth}" + (f"_{patch}" if patch and patch != "16" else "")
    return key


def list_models() -> list[str]:
    """The registry's model names, MLP-Mixer first."""
    return list(_REGISTRY)


def get_config(name: str, **overrides: Any) -> Config:
    """Returns the named config with ``overrides`` applied to its fields.

    >>> get_config("Mixer-B/16").tokens_mlp_dim
    384
    """
    key = canonical_name(name)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, _REGISTRY, n=4, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} Known models: {', '.join(_REGISTRY)}."
        )
    config = _REGISTRY[key]
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"Unknown config field(s) {unknown} for {key}; expected some of {sorted(fields)}."
        )
    config = dataclasses.replace(config, **overrides)
    validate_config(config)
    return config


def validate_config(config: Config) -> None:
    """Raises ``ValueError`` if the image size is not a multiple of the patch size."""
    if config.image_size % config.patch_size:
        raise ValueError(
            f"image_size must be divisible by patch_size: expected a multiple of "
            f"{config.patch_size}, got {config.image_size}."
        )
    for field in ("dropout", "stoch_depth"):
        p = getattr(config, field)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{field} must lie in [0, 1), got {p}.")
