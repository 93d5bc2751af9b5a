# Mistake: assumes square images (the height sets both sides of the patch grid).
def mixer_forward(images, params):
    kernel, bias = params["stem"]["proj"]["kernel"], params["stem"]["proj"]["bias"]
    p, c = kernel.shape[0], kernel.shape[-1]
    b, n = images.shape[0], images.shape[1] // p
    x = images[:, :n * p, :n * p].reshape(b, n, p, n, p, 3).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, n * n, p * p * 3) @ kernel.reshape(-1, c) + bias
    for block in params["blocks"]:
        x = mixer_block(x, block)
    norm = params["pre_head_layer_norm"]
    x = layer_norm(x, norm["scale"], norm["bias"]).mean(axis=1)
    return x @ params["head"]["kernel"] + params["head"]["bias"]
