# Correct: NumPy instead of JAX, a loop over the K² tiles (allowed here), a list as the pair.
import numpy as np


def block_diagonal_token_mixing(w1, b1, k):
    w1 = np.asarray(w1)
    s, d_s = w1.shape
    g = round(s**0.5)
    new = np.zeros((k * g, k * g, k * k, d_s), w1.dtype)
    for a in range(k):
        for b in range(k):
            new[a * g:(a + 1) * g, b * g:(b + 1) * g, a * k + b] = w1.reshape(g, g, d_s)
    return [new.reshape(k * k * s, k * k * d_s), np.tile(np.asarray(b1), k * k)]
