# Mistake: forgets the biases.
def mlp(x, params):
    return jax.nn.gelu(x @ params["fc1"]["kernel"]) @ params["fc2"]["kernel"]
