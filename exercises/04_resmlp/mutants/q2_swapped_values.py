# Mistake: 1e-6 for the middle range and 1e-5 for the deepest.
def layerscale_init(num_blocks):
    if num_blocks <= 12:
        return 0.1
    if num_blocks <= 24:
        return 1e-6
    return 1e-5
