# Mistake: adds eps to the standard deviation instead of the variance.
def layer_norm(x, scale, bias, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    std = jnp.sqrt(((x - mean) ** 2).mean(-1, keepdims=True))
    return (x - mean) / (std + eps) * scale + bias
