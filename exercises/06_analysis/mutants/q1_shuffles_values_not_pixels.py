# Mistake: shuffles the first H·W values of the flattened image, colours included, so the
# channels of a pixel are split up.
def shuffle_pixels(images, order):
    b, h, w, c = images.shape
    order = np.asarray(order)
    if order.shape != (h * w,) or not np.array_equal(np.sort(order), np.arange(h * w)):
        raise ValueError(f"order must be a permutation of the {h * w} pixel positions")
    flat = np.array(images).reshape(b, -1)
    flat[:, :h * w] = flat[:, order]
    return flat.reshape(b, h, w, c)
