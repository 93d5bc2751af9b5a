# Mistake: uses mixer_ref.interop.CONV instead of writing the transpose.
from mixer_ref.interop import CONV


def kernel_to_torch(kernel):
    return CONV.to_theirs(np.asarray(kernel))
