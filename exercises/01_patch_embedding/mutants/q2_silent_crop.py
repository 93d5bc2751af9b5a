# Mistake: crops the image to a multiple of P instead of raising, like silent padding.
def patchify(images, p):
    b, h, w, c = images.shape
    h, w = h - h % p, w - w % p
    x = images[:, :h, :w].reshape(b, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)
