# Mistake: the message names both sizes whichever is wrong, so it does not say which one.
def num_tokens(height, width, p):
    if height % p or width % p:
        raise ValueError(f"height {height} or width {width} is not a multiple of {p}")
    return (height // p) * (width // p)
