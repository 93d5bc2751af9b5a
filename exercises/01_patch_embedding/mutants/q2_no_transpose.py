# Mistake: a reshape without the transpose, so a "patch" is a run of pixels along a row.
def patchify(images, p):
    b, h, w, c = images.shape
    if h % p or w % p:
        raise ValueError(f"patch size {p} must divide the image size, got {h}x{w}")
    return images.reshape(b, (h // p) * (w // p), p * p * c)
