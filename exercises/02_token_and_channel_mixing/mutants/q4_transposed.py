# Mistake: copies the transposes of token mixing (runs only when S == C).
def channel_mixing(u, params):
    y = layer_norm(u, params["norm2"]["scale"], params["norm2"]["bias"])
    return u + mlp(y.swapaxes(1, 2), params["channel_mixing"]).swapaxes(1, 2)
