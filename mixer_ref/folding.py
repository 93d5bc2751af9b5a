"""Folding ResMLP's affine maps into linear layers for inference (Touvron et al., 2021, Sec. 2).

Aff(x) = α ⊙ x + β (Eq. (1)) computes no statistics, so after training it is a fixed affine
map, which the paper notes can be absorbed in the adjacent linear layer at inference. With a
kernel W in (in, out) layout and x a row vector:

    Linear(Aff(x)) = (α ⊙ x + β) W + b = x (diag(α) W) + (β W + b)           (into the next)
    γ ⊙ Linear(h)  = (h W + b) ⊙ γ     = h (W diag(γ)) + γ ⊙ b               (into the previous)

With the existing parameter shapes these folds are exact:

* ``norm2`` into ``mlp.fc1``, and LayerScale ``gamma_2`` into ``mlp.fc2``, in every block;
* the final ``norm`` into ``head``: the mean over patches commutes with a per-channel map.

The token branch, γ1 ⊙ (A Aff(X) + b1ᵀ) with X of shape S×C and A, b of ``linear_tokens``,
cannot be folded in general. Expanding it per channel column c,

    γ1_c (α_c A X_c + β_c A1 + b),

α commutes with A (A mixes patches, α scales channels), but not with the bias b: moving α
into γ1 would need the bias b / α_c, a different one in every channel (it is exact only if
b = 0). And β adds the S×C matrix (A1) βᵀ (row sums of A times β), which the (S,) bias
cannot hold. Nor can ``norm1`` be folded backwards: its input is the residual stream, which
also feeds the skip connection. So ``norm1`` and ``gamma_1`` stay as they are.
"""

from __future__ import annotations

import copy

import numpy as np

from mixer_ref.models import framework_of


def fold_affine(model):
    """Returns a new ResMLP with ``norm2``, ``gamma_2`` and ``norm`` folded into linear layers.

    ``model`` is a Flax NNX or PyTorch ``ResMLP``; it is not modified. In the new model the
    folded Affines are the identity (α = 1, β = 0), ``gamma_2`` is 1, and ``norm1`` and
    ``gamma_1`` are unchanged (see the module docstring for why they cannot be folded). The
    folds are computed in float64 and rounded once to float32, so the logits equal the
    original's up to float32 rounding of the reordered arithmetic: about 1e-6 relative on
    CPU (the tests check 1e-5).
    """
    family = getattr(getattr(model, "config", None), "family", None)
    if family != "resmlp":
        raise ValueError(
            f"fold_affine expects a ResMLP model, got {type(model).__name__} (family "
            f"{family!r}). Mixer's LayerNorm divides by per-token statistics, so it is not an "
            f"affine map and cannot be folded into a linear layer."
        )
    if framework_of(model) == "flax":
        from flax import nnx

        model, get, put = nnx.clone(model), _get_flax, _put_flax
    else:
        model, get, put = copy.deepcopy(model), _get_torch, _put_torch

    def into_next(affine, linear):
        alpha, beta, kernel = get(affine, "alpha"), get(affine, "beta"), get(linear, "kernel")
        put(linear, "bias", beta @ kernel + get(linear, "bias"))
        put(linear, "kernel", alpha[:, None] * kernel)
        put(affine, "alpha", np.ones_like(alpha))
        put(affine, "beta", np.zeros_like(beta))

    def into_previous(owner, name, linear):
        gamma = get(owner, name)
        put(linear, "kernel", get(linear, "kernel") * gamma)
        put(linear, "bias", get(linear, "bias") * gamma)
        put(owner, name, np.ones_like(gamma))

    for block in model.blocks:
        into_next(block.norm2, block.mlp.fc1)
        into_previous(block, "gamma_2", block.mlp.fc2)
    into_next(model.norm, model.head)
    return model


# Parameters as float64 numpy arrays; linear kernels in the (in, out) layout.
def _get_flax(module, name: str) -> np.ndarray:
    return np.asarray(getattr(module, name)[...], np.float64)


def _put_flax(module, name: str, value: np.ndarray) -> None:
    import jax.numpy as jnp

    param = getattr(module, name)
    param[...] = jnp.asarray(value, param[...].dtype)


def _get_torch(module, name: str) -> np.ndarray:
    if name == "kernel":
        return module.weight.detach().cpu().double().numpy().T
    return getattr(module, name).detach().cpu().double().numpy()


def _put_torch(module, name: str, value: np.ndarray) -> None:
    import torch

    param = module.weight if name == "kernel" else getattr(module, name)
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value.T if name == "kernel" else value)))
