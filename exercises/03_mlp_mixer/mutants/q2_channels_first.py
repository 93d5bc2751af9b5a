# Mistake: channel mixing before token mixing.
def mixer_block(x, params):
    y = layer_norm(x, params["norm2"]["scale"], params["norm2"]["bias"])
    u = x + mlp(y, params["channel_mixing"])
    y = layer_norm(u, params["norm1"]["scale"], params["norm1"]["bias"])
    return u + mlp(y.swapaxes(1, 2), params["token_mixing"]).swapaxes(1, 2)
