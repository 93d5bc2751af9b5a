# Mistake: tokens in column-major order (down the first column of patches first).
def patchify(images, p):
    b, h, w, c = images.shape
    if h % p or w % p:
        raise ValueError(f"patch size {p} must divide the image size, got {h}x{w}")
    x = images.reshape(b, h // p, p, w // p, p, c)
    x = x.transpose(0, 3, 1, 2, 4, 5)  # (B, W/P, H/P, P, P, 3)
    return x.reshape(b, (h // p) * (w // p), p * p * c)
