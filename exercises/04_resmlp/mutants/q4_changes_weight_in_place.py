# Mistake: the right values, but weight.mul_(alpha) changes the caller's weight in place.
def fold_affine_into_linear(alpha, beta, weight, bias):
    new_bias = weight @ beta + bias
    return weight.mul_(alpha), new_bias
