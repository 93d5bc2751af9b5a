# Mistake: transposes first, so LayerNorm normalises each channel over the tokens.
def token_mixing(x, params):
    y = layer_norm(x.swapaxes(1, 2), params["norm1"]["scale"], params["norm1"]["bias"])
    return x + mlp(y, params["token_mixing"]).swapaxes(1, 2)
