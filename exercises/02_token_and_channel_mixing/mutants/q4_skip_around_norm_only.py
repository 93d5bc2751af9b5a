# Mistake: adds the normalised input instead of the input as the skip.
def channel_mixing(u, params):
    y = layer_norm(u, params["norm2"]["scale"], params["norm2"]["bias"])
    return y + mlp(y, params["channel_mixing"])
