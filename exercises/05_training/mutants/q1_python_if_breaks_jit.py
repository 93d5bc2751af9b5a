# Mistake: a Python `if` on the step, which fails inside jax.jit (the step is a tracer there).
def warmup_linear_decay(step, peak_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return 0.0
    return peak_lr * (total_steps - step) / (total_steps - warmup_steps)
