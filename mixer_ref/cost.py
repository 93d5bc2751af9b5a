"""What one block costs as the number of tokens S grows: Mixer against self-attention.

Tolstikhin et al. (2021), Sec. 2: with D_S fixed, a Mixer block's compute is linear in S,
where self-attention's is quadratic; its token-mixing weights (S×D_S) still grow with S.
Their Supp. C grows D_S with S for higher resolutions, which makes token mixing quadratic.

Counts are multiply-adds (MACs) of the matrix products, per image, as in
:mod:`mixer_ref.flops`. The self-attention block is a pre-LayerNorm ViT encoder layer
(Dosovitskiy et al., 2021, Eq. (2)–(3)): Q, K, V and output projections (4·S·C²),
QKᵀ and the attention-weighted sum of V (2·S²·C), and the MLP (2·S·C·D_C).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mixer_ref.configs import Config
from mixer_ref.flax.layers import MlpBlock
from mixer_ref.flops import flops_per_image
from mixer_ref.models import build, count_params


def mixer_block_macs(s: int, c: int, d_s: int, d_c: int) -> dict[str, int]:
    """Eq. (1): token mixing 2·S·D_S·C and channel mixing 2·S·C·D_C multiply-adds."""
    return {"token_mixing": 2 * s * d_s * c, "channel_mixing": 2 * s * c * d_c}


def attention_block_macs(s: int, c: int, d_c: int) -> dict[str, int]:
    """A ViT layer: projections 4·S·C², the quadratic QKᵀ and AV 2·S²·C, MLP 2·S·C·D_C."""
    return {"projections": 4 * s * c * c, "attention": 2 * s * s * c, "mlp": 2 * s * c * d_c}


def mixer_block_params(s: int, c: int, d_s: int, d_c: int) -> dict[str, int]:
    """Parameters of a Mixer block: W1, W2 (and biases) grow with S; the rest do not."""
    return {"token_mixing": 2 * s * d_s + d_s + s,
            "channel_mixing": 2 * c * d_c + d_c + c,
            "layer_norms": 4 * c}


def attention_block_params(c: int, d_c: int) -> dict[str, int]:
    """Parameters of a ViT layer, none of which depend on S (positions live in the stem)."""
    return {"attention": 4 * c * c + 4 * c, "mlp": 2 * c * d_c + d_c + c, "layer_norms": 4 * c}


def quadratic_share(s: int, c: int, d_c: int) -> float:
    """The share of a ViT layer's multiply-adds in its S² term, 2S²C / (4SC² + 2S²C + 2SCD_C)
    = S / (2C + S + D_C): for ViT-B/16 (C = 768, D_C = 3072) at S = 196, about 4%."""
    macs = attention_block_macs(s, c, d_c)
    return macs["attention"] / sum(macs.values())


class AttentionBlock(nnx.Module):
    """A pre-LayerNorm Transformer encoder layer on (B, S, C): x + MHSA(LN(x)), then
    x + MLP(LN(x)) (Dosovitskiy et al., 2021, Eq. (2)–(3))."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(num_heads, dim, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.mlp = MlpBlock(dim, mlp_dim, approximate_gelu=True, dropout=0.0, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def images_per_second(module: nnx.Module, inputs: jax.Array, repeats: int = 3) -> float:
    """Forward throughput of ``module`` on ``inputs`` (batch first): compiled with
    ``jax.jit``, called once to compile and warm up, then the median of ``repeats`` timed
    calls, each waited for with ``block_until_ready``."""
    graphdef, state = nnx.split(module)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    forward(state, inputs).block_until_ready()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(state, inputs).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return inputs.shape[0] / statistics.median(seconds)


def throughput_within_budget(configs: dict[str, Config], budget_s: float,
                             batch_size: int = 1, repeats: int = 2,
                             progress: Callable | None = None,
                             always: Sequence[str] = ()) -> dict[str, float | None]:
    """Forward images/s of the model of each config (zero weights, :func:`zero_model`),
    measured in the order given while the time spent stays within ``budget_s`` seconds.

    Before building a model, the time it would take is predicted from the models measured
    so far: their slowest build, per parameter, and their slowest compile and timed calls,
    per FLOP (:func:`mixer_ref.flops.flops_per_image`). A model that would overrun the budget
    is skipped and gets ``None``; the first one, and those named in ``always`` (a reference
    that ratios need), are always measured.
    """
    start, per_param, per_flop, result = time.perf_counter(), 0.0, 0.0, {}
    for name in progress(list(configs)) if progress else configs:
        config = configs[name]
        params = count_params(nnx.eval_shape(lambda config=config: build(config, "flax")))
        work = (repeats + 2) * batch_size * flops_per_image(config)  # warm-up ≈ 2 calls
        elapsed = time.perf_counter() - start
        if (result and name not in always
                and elapsed + per_param * params + per_flop * work > budget_s):
            result[name] = None
            continue
        built = time.perf_counter()
        model = zero_model(config)
        images = jnp.zeros((batch_size, config.image_size, config.image_size, 3))
        timed = time.perf_counter()
        result[name] = images_per_second(model, images, repeats)
        per_param = max(per_param, (timed - built) / params)
        per_flop = max(per_flop, (time.perf_counter() - timed) / work)
        del model
    return result


def zero_model(config) -> nnx.Module:
    """The Flax model of ``config`` with every parameter zero: built without drawing random
    numbers, for timing only (a dense forward pass costs the same for any weights)."""
    abstract = nnx.eval_shape(lambda: build(config, "flax"))
    graphdef, state = nnx.split(abstract)
    return nnx.merge(graphdef, jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), state))
