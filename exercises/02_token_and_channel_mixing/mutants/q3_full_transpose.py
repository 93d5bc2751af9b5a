# Mistake: .T on a (B, S, C) array reverses all three axes, moving the batch too.
def token_mixing(x, params):
    y = layer_norm(x, params["norm1"]["scale"], params["norm1"]["bias"])
    return x + mlp(y.T, params["token_mixing"]).T
