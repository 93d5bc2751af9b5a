# Mistake: mean squared error between the logits and the one-hot labels.
def train_step(params, opt_state, batch, apply_fn, tx):
    x, labels = batch

    def loss_fn(p):
        logits = apply_fn(p, x)
        return ((logits - jax.nn.one_hot(labels, logits.shape[-1])) ** 2).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
