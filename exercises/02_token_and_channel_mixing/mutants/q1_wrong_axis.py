# Mistake: normalises over the tokens (axis 1) instead of the channels of each token.
def layer_norm(x, scale, bias, eps=1e-6):
    mean = x.mean(1, keepdims=True)
    var = ((x - mean) ** 2).mean(1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * scale + bias
