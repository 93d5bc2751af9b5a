# Mistake: channel mixing reads X instead of U (two parallel branches).
def mixer_block(x, params):
    y = layer_norm(x, params["norm1"]["scale"], params["norm1"]["bias"])
    u = x + mlp(y.swapaxes(1, 2), params["token_mixing"]).swapaxes(1, 2)
    z = layer_norm(x, params["norm2"]["scale"], params["norm2"]["bias"])
    return u + mlp(z, params["channel_mixing"])
