# Mistake: classifies from the first token, as ViT does with its class token, not the mean.
def mixer_forward(images, params):
    kernel, bias = params["stem"]["proj"]["kernel"], params["stem"]["proj"]["bias"]
    p, c = kernel.shape[0], kernel.shape[-1]
    b, h, w, _ = images.shape
    x = images.reshape(b, h // p, p, w // p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, (h // p) * (w // p), p * p * 3) @ kernel.reshape(-1, c) + bias
    for block in params["blocks"]:
        x = mixer_block(x, block)
    norm = params["pre_head_layer_norm"]
    x = layer_norm(x, norm["scale"], norm["bias"])[:, 0]
    return x @ params["head"]["kernel"] + params["head"]["bias"]
