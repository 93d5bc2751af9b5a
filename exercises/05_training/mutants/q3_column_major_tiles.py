# Mistake: tiles numbered column-major, t = b·K + a.
def block_diagonal_token_mixing(w1, b1, k):
    s, d_s = w1.shape
    g = round(s**0.5)
    tiles = jnp.eye(k * k, dtype=w1.dtype).reshape(k, k, k * k).transpose(1, 0, 2)
    w = jnp.einsum("abt,ijd->aibjtd", tiles, jnp.asarray(w1).reshape(g, g, d_s))
    return w.reshape(k * k * s, k * k * d_s), jnp.tile(jnp.asarray(b1), k * k)
