# Mistake: flattens the pixel grid column by column (W before H) instead of row-major.
def shuffle_pixels(images, order):
    b, h, w, c = images.shape
    order = np.asarray(order)
    if order.shape != (h * w,) or not np.array_equal(np.sort(order), np.arange(h * w)):
        raise ValueError(f"order must be a permutation of the {h * w} pixel positions")
    flat = images.transpose(0, 2, 1, 3).reshape(b, h * w, c)[:, order]
    return flat.reshape(b, w, h, c).transpose(0, 2, 1, 3)
