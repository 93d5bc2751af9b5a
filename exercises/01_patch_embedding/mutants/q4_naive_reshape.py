# Mistake: reshapes to (C, 3, P, P): the right shape, the wrong order of entries.
def kernel_to_torch(kernel):
    p, c = kernel.shape[0], kernel.shape[-1]
    return np.asarray(kernel).reshape(c, 3, p, p)
