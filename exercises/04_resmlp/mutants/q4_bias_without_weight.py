# Mistake: adds beta to the bias without passing it through the weight.
def fold_affine_into_linear(alpha, beta, weight, bias):
    return weight * alpha, bias + beta.sum()
