# Mistake: the kernel is right, but the new bias is left at zero.
def block_diagonal_token_mixing(w1, b1, k):
    s, d_s = w1.shape
    g = round(s**0.5)
    tiles = jnp.eye(k * k, dtype=w1.dtype).reshape(k, k, k * k)
    w = jnp.einsum("abt,ijd->aibjtd", tiles, jnp.asarray(w1).reshape(g, g, d_s))
    return w.reshape(k * k * s, k * k * d_s), jnp.zeros(k * k * d_s, w1.dtype)
