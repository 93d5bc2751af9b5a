# Mistake: groups entries by the flat offset j - i (a 1-D Toeplitz matrix), not by the
# offset (Δrow, Δcol) on the 2-D patch grid.
def toeplitz_share(a):
    a = np.asarray(a, np.float64)
    s = a.shape[0]
    offset = np.arange(s)[None, :] - np.arange(s)[:, None] + s - 1
    sums = np.bincount(offset.ravel(), a.ravel(), 2 * s - 1)
    counts = np.bincount(offset.ravel(), minlength=2 * s - 1)
    projected = (sums / counts)[offset]
    return float((projected**2).sum() / (a**2).sum())
