# Mistake: turns the targets into hard labels, wrong for smoothed targets.
def hard_distillation_loss(student_logits, teacher_logits, targets):
    labels = jax.lax.stop_gradient(teacher_logits).argmax(-1)
    true = optax.softmax_cross_entropy_with_integer_labels(student_logits, targets.argmax(-1))
    distilled = optax.softmax_cross_entropy_with_integer_labels(student_logits, labels)
    return (0.5 * true + 0.5 * distilled).mean()
