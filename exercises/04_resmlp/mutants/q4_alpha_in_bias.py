# Mistake: scales beta by alpha too, folding as if Aff(x) were alpha * (x + beta).
def fold_affine_into_linear(alpha, beta, weight, bias):
    return weight * alpha, weight @ (alpha * beta) + bias
