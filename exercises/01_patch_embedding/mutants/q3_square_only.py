# Mistake: assumes square images (the height sets both sides of the patch grid).
import numpy as np


def embed_patches(images, kernel, bias):
    p, c = kernel.shape[0], kernel.shape[-1]
    b, n = images.shape[0], images.shape[1] // p
    x = np.asarray(images)[:, :n * p, :n * p].reshape(b, n, p, n, p, 3)
    x = x.transpose(0, 1, 3, 2, 4, 5).reshape(b, n * n, p * p * 3)
    return x @ np.asarray(kernel).reshape(-1, c) + bias
