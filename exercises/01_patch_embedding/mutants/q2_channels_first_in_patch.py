# Mistake: flattens each patch in (k, u, v) order, colour first, as a PyTorch user might.
def patchify(images, p):
    b, h, w, c = images.shape
    if h % p or w % p:
        raise ValueError(f"patch size {p} must divide the image size, got {h}x{w}")
    x = images.reshape(b, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 5, 2, 4)  # (B, H/P, W/P, 3, P, P)
    return x.reshape(b, (h // p) * (w // p), p * p * c)
