# Mistake: soft distillation: the CE with the teacher's softmax, through which a gradient
# flows into the teacher, instead of its argmax.
def hard_distillation_loss(student_logits, teacher_logits, targets):
    true = optax.softmax_cross_entropy(student_logits, targets)
    soft = optax.softmax_cross_entropy(student_logits, jax.nn.softmax(teacher_logits))
    return (0.5 * true + 0.5 * soft).mean()
