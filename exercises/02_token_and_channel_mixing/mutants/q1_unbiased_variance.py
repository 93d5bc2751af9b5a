# Mistake: the unbiased variance (divides by C - 1), as jnp.var(ddof=1) or torch.var default.
def layer_norm(x, scale, bias, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True, ddof=1)
    return (x - mean) / jnp.sqrt(var + eps) * scale + bias
