# Mistake: the right values, but `x -= mean` changes the caller's array in place.
def layer_norm(x, scale, bias, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    x -= mean
    var = (x**2).mean(-1, keepdims=True)
    return x / jnp.sqrt(var + eps) * scale + bias
