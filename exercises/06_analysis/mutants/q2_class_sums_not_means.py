# Mistake: replaces each entry by the sum of its offset class instead of the mean.
def toeplitz_share(a):
    a = np.asarray(a, np.float64)
    g = round(a.shape[0] ** 0.5)
    row, col = np.divmod(np.arange(g * g), g)
    offset = ((row[None, :] - row[:, None] + g - 1) * (2 * g - 1)
              + col[None, :] - col[:, None] + g - 1)
    sums = np.bincount(offset.ravel(), a.ravel(), (2 * g - 1) ** 2)
    projected = sums[offset]
    return float((projected**2).sum() / (a**2).sum())
