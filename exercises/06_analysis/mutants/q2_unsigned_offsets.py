# Mistake: uses |Δrow| and |Δcol|, so opposite offsets share one class.
def toeplitz_share(a):
    a = np.asarray(a, np.float64)
    g = round(a.shape[0] ** 0.5)
    row, col = np.divmod(np.arange(g * g), g)
    offset = np.abs(row[None, :] - row[:, None]) * g + np.abs(col[None, :] - col[:, None])
    sums = np.bincount(offset.ravel(), a.ravel(), g * g)
    counts = np.bincount(offset.ravel(), minlength=g * g)
    projected = (sums / np.maximum(counts, 1))[offset]
    return float((projected**2).sum() / (a**2).sum())
