# Mistake: moves input pixel i to position order[i], the inverse of the permutation asked for.
def shuffle_pixels(images, order):
    b, h, w, c = images.shape
    order = np.asarray(order)
    if order.shape != (h * w,) or not np.array_equal(np.sort(order), np.arange(h * w)):
        raise ValueError(f"order must be a permutation of the {h * w} pixel positions")
    out = np.empty((b, h * w, c), np.asarray(images).dtype)
    out[:, order] = np.asarray(images).reshape(b, h * w, c)
    return out.reshape(b, h, w, c)
