# Mistake: ReLU instead of GELU.
def mlp(x, params):
    fc1, fc2 = params["fc1"], params["fc2"]
    return jax.nn.relu(x @ fc1["kernel"] + fc1["bias"]) @ fc2["kernel"] + fc2["bias"]
