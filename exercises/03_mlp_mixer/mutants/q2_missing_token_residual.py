# Mistake: no skip connection around token mixing.
def mixer_block(x, params):
    y = layer_norm(x, params["norm1"]["scale"], params["norm1"]["bias"])
    u = mlp(y.swapaxes(1, 2), params["token_mixing"]).swapaxes(1, 2)
    y = layer_norm(u, params["norm2"]["scale"], params["norm2"]["bias"])
    return u + mlp(y, params["channel_mixing"])
