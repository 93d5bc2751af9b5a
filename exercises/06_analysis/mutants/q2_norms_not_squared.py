# Mistake: the ratio of the Frobenius norms, not of their squares (the energies).
def toeplitz_share(a):
    a = np.asarray(a, np.float64)
    g = round(a.shape[0] ** 0.5)
    row, col = np.divmod(np.arange(g * g), g)
    offset = ((row[None, :] - row[:, None] + g - 1) * (2 * g - 1)
              + col[None, :] - col[:, None] + g - 1)
    sums = np.bincount(offset.ravel(), a.ravel(), (2 * g - 1) ** 2)
    counts = np.bincount(offset.ravel(), minlength=(2 * g - 1) ** 2)
    projected = (sums / np.maximum(counts, 1))[offset]
    return float(np.linalg.norm(projected) / np.linalg.norm(a))
