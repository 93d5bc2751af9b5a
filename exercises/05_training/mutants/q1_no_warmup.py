# Mistake: no warmup; linear decay from the peak at step 0.
def warmup_linear_decay(step, peak_lr, warmup_steps, total_steps):
    return peak_lr * max(total_steps - step, 0) / total_steps
