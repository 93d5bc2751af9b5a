# Mistake: 1e-5 for every depth beyond 12.
def layerscale_init(num_blocks):
    return 0.1 if num_blocks <= 12 else 1e-5
