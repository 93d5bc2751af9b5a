# Mistake: the warmup reaches the peak one step late, at warmup_steps + 1.
def warmup_linear_decay(step, peak_lr, warmup_steps, total_steps):
    warmup = peak_lr * step / (warmup_steps + 1)
    decay = peak_lr * (total_steps - step) / max(total_steps - warmup_steps - 1, 1)
    return jnp.where(step <= warmup_steps, warmup, jnp.clip(decay, 0.0, peak_lr))
