# Correct: jnp.minimum / jnp.maximum instead of jnp.where, so it works under jax.jit too.
def warmup_linear_decay(step, peak_lr, warmup_steps, total_steps):
    up = step / max(warmup_steps, 1)
    down = (total_steps - step) / max(total_steps - warmup_steps, 1)
    return peak_lr * jnp.maximum(jnp.minimum(up, down), 0.0)
