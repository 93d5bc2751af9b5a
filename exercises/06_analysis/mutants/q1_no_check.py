# Mistake: accepts any index array, so a repeated position silently duplicates a pixel.
def shuffle_pixels(images, order):
    b, h, w, c = images.shape
    return images.reshape(b, h * w, c)[:, np.asarray(order)].reshape(b, h, w, c)
