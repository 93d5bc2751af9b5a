# Mistake: forgets the bias.
def embed_patches(images, kernel, bias):
    p, c = kernel.shape[0], kernel.shape[-1]
    return patchify(images, p) @ kernel.reshape(-1, c)
