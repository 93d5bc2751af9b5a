# Mistake: kernel.T reverses all axes, giving (C, 3, v, u): the patch comes out transposed.
def kernel_to_torch(kernel):
    return np.asarray(kernel).T
