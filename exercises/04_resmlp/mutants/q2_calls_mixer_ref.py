# Mistake: calls mixer_ref's helper instead of writing the rule.
from mixer_ref.configs import layerscale_init_for_depth


def layerscale_init(num_blocks):
    return layerscale_init_for_depth(num_blocks)
