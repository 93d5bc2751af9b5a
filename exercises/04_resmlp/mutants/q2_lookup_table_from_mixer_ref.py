# Mistake (a ban bypass): builds a lookup table from mixer_ref's configs when the cell runs,
# before any graded call.
import mixer_ref

_DEPTHS = sorted((mixer_ref.get_config(name).num_blocks, mixer_ref.get_config(name).layerscale_init)
                 for name in ("resmlp_s12", "resmlp_s24", "resmlp_s36"))


def layerscale_init(num_blocks):
    for depth, value in _DEPTHS:
        if num_blocks <= depth:
            return value
    return _DEPTHS[-1][1]
