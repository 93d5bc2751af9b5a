# Mistake: uses mixer_ref's own surgery helpers.
import numpy as np
from mixer_ref.surgery import block_diagonal, tile_tokens


def block_diagonal_token_mixing(w1, b1, k):
    s, d_s = w1.shape
    tokens = tile_tokens(round(s**0.5), k)
    hidden = np.arange(k * k * d_s).reshape(k * k, d_s)
    return block_diagonal(np.asarray(w1), np.asarray(b1), tokens, hidden)
