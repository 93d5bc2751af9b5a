# Mistake: skips the pre-head LayerNorm.
def mixer_forward(images, params):
    kernel, bias = params["stem"]["proj"]["kernel"], params["stem"]["proj"]["bias"]
    p, c = kernel.shape[0], kernel.shape[-1]
    b, h, w, _ = images.shape
    x = images.reshape(b, h // p, p, w // p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, (h // p) * (w // p), p * p * 3) @ kernel.reshape(-1, c) + bias
    for block in params["blocks"]:
        x = mixer_block(x, block)
    return x.mean(axis=1) @ params["head"]["kernel"] + params["head"]["bias"]
