# Mistake: decays to peak_lr / 10 instead of 0.
def warmup_linear_decay(step, peak_lr, warmup_steps, total_steps):
    end = peak_lr / 10
    warmup = peak_lr * step / max(warmup_steps, 1)
    frac = jnp.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
    return jnp.where(step < warmup_steps, warmup, peak_lr + frac * (end - peak_lr))
