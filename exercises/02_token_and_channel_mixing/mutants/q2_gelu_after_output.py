# Mistake: a GELU after the second Dense layer too.
def mlp(x, params):
    fc1, fc2 = params["fc1"], params["fc2"]
    hidden = jax.nn.gelu(x @ fc1["kernel"] + fc1["bias"])
    return jax.nn.gelu(hidden @ fc2["kernel"] + fc2["bias"])
