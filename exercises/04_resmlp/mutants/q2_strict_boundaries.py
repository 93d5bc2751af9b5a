# Mistake: < instead of <=, so 12 and 24 blocks fall in the next range.
def layerscale_init(num_blocks):
    if num_blocks < 12:
        return 0.1
    if num_blocks < 24:
        return 1e-5
    return 1e-6
