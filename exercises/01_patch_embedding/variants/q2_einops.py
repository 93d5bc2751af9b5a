# Correct: einops.rearrange instead of reshape and transpose.
import einops


def patchify(images, p):
    b, h, w, c = images.shape
    if h % p or w % p:
        raise ValueError(f"height {h} or width {w} is not a multiple of {p}")
    return einops.rearrange(images, "b (h u) (w v) k -> b (h w) (u v k)", u=p, v=p)
