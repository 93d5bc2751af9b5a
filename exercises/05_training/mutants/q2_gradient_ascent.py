# Mistake: subtracts the updates, which already point downhill: gradient ascent.
def train_step(params, opt_state, batch, apply_fn, tx):
    x, labels = batch

    def loss_fn(p):
        logits = apply_fn(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p - u, params, updates), opt_state, loss
