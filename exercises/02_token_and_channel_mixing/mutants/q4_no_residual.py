# Mistake: forgets the skip connection.
def channel_mixing(u, params):
    y = layer_norm(u, params["norm2"]["scale"], params["norm2"]["bias"])
    return mlp(y, params["channel_mixing"])
