# Mistake: validates the height but not the width.
def num_tokens(height, width, p):
    if height % p:
        raise ValueError(f"patch size {p} must divide the height, got {height}")
    return (height // p) * (width // p)
