# Mistake: flattens the kernel in (k, u, v) order while the patches are in (u, v, k) order.
def embed_patches(images, kernel, bias):
    p, c = kernel.shape[0], kernel.shape[-1]
    return patchify(images, p) @ kernel.transpose(2, 0, 1, 3).reshape(-1, c) + bias
