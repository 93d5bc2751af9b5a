# Mistake: its own MLP with the exact (erf) GELU instead of the official tanh approximation.
def mixer_block(x, params):
    def mlp_erf(h, p):
        h = jax.nn.gelu(h @ p["fc1"]["kernel"] + p["fc1"]["bias"], approximate=False)
        return h @ p["fc2"]["kernel"] + p["fc2"]["bias"]

    y = layer_norm(x, params["norm1"]["scale"], params["norm1"]["bias"])
    u = x + mlp_erf(y.swapaxes(1, 2), params["token_mixing"]).swapaxes(1, 2)
    y = layer_norm(u, params["norm2"]["scale"], params["norm2"]["bias"])
    return u + mlp_erf(y, params["channel_mixing"])
