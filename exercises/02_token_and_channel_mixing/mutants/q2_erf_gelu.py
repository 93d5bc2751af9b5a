# Mistake: the exact (erf) GELU, where the official Mixer uses the tanh approximation.
def mlp(x, params):
    fc1, fc2 = params["fc1"], params["fc2"]
    hidden = jax.nn.gelu(x @ fc1["kernel"] + fc1["bias"], approximate=False)
    return hidden @ fc2["kernel"] + fc2["bias"]
