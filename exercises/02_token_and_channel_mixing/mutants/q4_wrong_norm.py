# Mistake: reuses norm1's parameters for the second LayerNorm.
def channel_mixing(u, params):
    y = layer_norm(u, params["norm1"]["scale"], params["norm1"]["bias"])
    return u + mlp(y, params["channel_mixing"])
