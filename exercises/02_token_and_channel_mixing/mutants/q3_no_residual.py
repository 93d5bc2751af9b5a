# Mistake: forgets the skip connection.
def token_mixing(x, params):
    y = layer_norm(x, params["norm1"]["scale"], params["norm1"]["bias"])
    return mlp(y.swapaxes(1, 2), params["token_mixing"]).swapaxes(1, 2)
