# Mistake: the right values, but a Python loop over the patches (the question asks for none).
import numpy as np


def patchify(images, p):
    b, h, w, c = images.shape
    if h % p or w % p:
        raise ValueError(f"patch size {p} must divide the image size, got {h}x{w}")
    patches = [np.asarray(images[:, i:i + p, j:j + p]).reshape(b, -1)
               for i in range(0, h, p) for j in range(0, w, p)]
    return np.stack(patches, axis=1)
