# Mistake: alpha scales the rows (outputs) of the weight, as with a Flax (in, out) kernel.
def fold_affine_into_linear(alpha, beta, weight, bias):
    return alpha[:, None] * weight, weight @ beta + bias
