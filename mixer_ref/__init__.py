"""Reference MLP-Mixer and ResMLP in Flax NNX and PyTorch.

Papers: Tolstikhin et al. (2021), arXiv:2105.01601; Touvron et al. (2021), arXiv:2105.03404.
"""

from mixer_ref.checkpoints import load_pretrained, save_checkpoint
from mixer_ref.configs import MixerConfig, ResMLPConfig, get_config, list_models
from mixer_ref.folding import fold_affine
from mixer_ref.interop import convert
from mixer_ref.models import count_params, create_model
from mixer_ref.surgery import expand_token_mixing

__all__ = [
    "MixerConfig",
    "ResMLPConfig",
    "convert",
    "count_params",
    "create_model",
    "expand_token_mixing",
    "fold_affine",
    "get_config",
    "list_models",
    "load_pretrained",
    "save_checkpoint",
]
