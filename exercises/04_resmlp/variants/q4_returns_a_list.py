# Correct: a list [weight, bias] is a pair too; the question asks for no particular type.
def fold_affine_into_linear(alpha, beta, weight, bias):
    return [weight * alpha[None, :], torch.matmul(weight, beta) + bias]
