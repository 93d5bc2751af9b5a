# Mistake: moves only the output channels forward, giving (C, P, P, 3).
def kernel_to_torch(kernel):
    return np.moveaxis(np.asarray(kernel), -1, 0)
