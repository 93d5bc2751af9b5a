# Mistake: no transposes, so the "token" MLP mixes channels (runs only when S == C).
def token_mixing(x, params):
    y = layer_norm(x, params["norm1"]["scale"], params["norm1"]["bias"])
    return x + mlp(y, params["token_mixing"])
