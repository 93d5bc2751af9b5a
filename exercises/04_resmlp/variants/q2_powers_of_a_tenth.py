# Correct: 0.1 ** 5 is 1.0000000000000003e-05, equal to 1e-5 within float precision.
def layerscale_init(num_blocks):
    if num_blocks <= 12:
        return 0.1
    return 0.1**5 if num_blocks <= 24 else 0.1**6
