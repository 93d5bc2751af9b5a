# Mistake: adds the two cross-entropies without the halves.
def hard_distillation_loss(student_logits, teacher_logits, targets):
    labels = jax.lax.stop_gradient(teacher_logits).argmax(-1)
    true = optax.softmax_cross_entropy(student_logits, targets)
    distilled = optax.softmax_cross_entropy_with_integer_labels(student_logits, labels)
    return (true + distilled).mean()
