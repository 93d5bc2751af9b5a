"""The optimizers and learning-rate schedules of the recipes, wired from optax.

* Pretraining (Mixer, Sec. 3): Adam (β1 0.9, β2 0.999) with decoupled weight decay, linear
  warmup then linear decay, gradients clipped at global norm 1.
* Fine-tuning (Mixer, Supp. C): momentum SGD, linear warmup then cosine, clipping at 1, no
  weight decay.
* ResMLP (Sec. 4): LAMB with weight decay, linear warmup then cosine.
"""

from __future__ import annotations

import jax
import optax

from mixer_ref.train.recipes import OptimSpec


def make_schedule(spec: OptimSpec, num_steps: int) -> optax.Schedule:
    """Rises linearly from 0 to ``learning_rate`` over ``warmup_steps``, then decays to 0
    at ``num_steps``, linearly or along a cosine."""
    peak, warmup = spec.learning_rate, spec.warmup_steps
    if spec.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, num_steps, end_value=0.0)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup),
         optax.linear_schedule(peak, 0.0, num_steps - warmup)],
        boundaries=[warmup],
    )


def decay_mask(params):
    """Weight decay on kernels only (rank ≥ 2), not on biases, norms or LayerScale."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(spec: OptimSpec, num_steps: int) -> optax.GradientTransformation:
    """The recipe's optax chain: clipping (if ``grad_clip_norm`` > 0), then the optimizer."""
    if spec.optimizer == "sgd" and spec.weight_decay:
        raise ValueError("The fine-tuning recipe (sgd) uses no weight decay (Supp. C); "
                         f"got optim.weight_decay={spec.weight_decay}.")
    lr = make_schedule(spec, num_steps)
    if spec.optimizer == "sgd":
        tx = optax.sgd(lr, momentum=spec.momentum)
    elif spec.optimizer == "lamb":
        tx = optax.lamb(lr, b1=spec.b1, b2=spec.b2, weight_decay=spec.weight_decay,
                        mask=decay_mask)
    else:
        tx = optax.adamw(lr, b1=spec.b1, b2=spec.b2, weight_decay=spec.weight_decay,
                         mask=decay_mask)
    if spec.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(spec.grad_clip_norm), tx)
    return tx
