# Mistake: assumes square images, (H/P)².
def num_tokens(height, width, p):
    if height % p or width % p:
        raise ValueError(f"patch size {p} must divide the image size, got {height}x{width}")
    return (height // p) ** 2
