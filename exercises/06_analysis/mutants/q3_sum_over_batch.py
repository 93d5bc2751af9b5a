# Mistake: sums over the batch instead of averaging.
def hard_distillation_loss(student_logits, teacher_logits, targets):
    labels = jax.lax.stop_gradient(teacher_logits).argmax(-1)
    true = optax.softmax_cross_entropy(student_logits, targets)
    distilled = optax.softmax_cross_entropy_with_integer_labels(student_logits, labels)
    return (0.5 * true + 0.5 * distilled).sum()
