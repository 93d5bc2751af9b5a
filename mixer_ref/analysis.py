"""What the papers found, measured on our own models: the permutation experiment, untied token
mixing, and the structure of the learned mixing weights.

* Input permutations (Tolstikhin et al., 2021, Sec. 3.4 and Fig. 4): a fixed shuffle of the
  patches and of the pixels inside them (:class:`PatchShuffle`), which a Mixer absorbs into
  its weights exactly (:func:`absorb_patch_shuffle`), and a fixed global pixel shuffle
  (:func:`global_shuffle`).
* Weight tying (Sec. 2): token mixing with a separate MLP per channel
  (:class:`UntiedTokenMixing`, :func:`mixer_maker`).
* Learned token-mixing units (Sec. 3.5 and Fig. 5): pairs of opposite phase, sorted by
  spatial frequency (:func:`opposite_phase_pairs`, :func:`spatial_frequency`).
* ResMLP's patch-interaction matrices A (Touvron et al., 2021, the visualisation and the
  sparsity analysis of the linear layers): how much of A is a convolution on the patch grid
  (:func:`toeplitz_share`), and the distribution of |w| / max |w| (:func:`relative_magnitudes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mixer_ref.configs import Config, MixerConfig
from mixer_ref.data import ArrayDataset
from mixer_ref.flax import MlpMixer, ResMLP

# --- input permutations (Mixer Sec. 3.4) ---------------------------------------------------


def shuffle_images(images: np.ndarray, order: np.ndarray) -> np.ndarray:
    """NHWC ``images`` with their H·W pixel positions rearranged: flat position i of the
    output shows flat position ``order[i]`` (row-major) of the input, in every channel."""
    n, h, w, c = images.shape
    if sorted(order.tolist()) != list(range(h * w)):
        raise ValueError(f"order must be a permutation of the {h * w} pixel positions of "
                         f"{h}×{w} images, got {len(order)} values.")
    return images.reshape(n, h * w, c)[:, order].reshape(n, h, w, c)


def shuffle_dataset(dataset: ArrayDataset, order: np.ndarray) -> ArrayDataset:
    """``dataset`` with every image shuffled by :func:`shuffle_images` (one fixed ``order``)."""
    return dataclasses.replace(dataset, images=shuffle_images(dataset.images, order))


def global_shuffle(image_size: int, seed: int) -> np.ndarray:
    """The paper's "global shuffling": one fixed permutation of all pixel positions."""
    return np.random.default_rng(seed).permutation(image_size * image_size)


@dataclasses.dataclass(frozen=True)
class PatchShuffle:
    """The paper's "patch + pixel shuffling": one fixed permutation of the S patches, and one
    of the P² pixels inside a patch, the same for every patch.

    Patch j of a shuffled image is patch ``tokens[j]`` of the original (row-major on the grid),
    and pixel q inside it is the original's pixel ``pixels[q]`` (row-major in the patch).
    """

    image_size: int
    patch_size: int
    tokens: np.ndarray
    pixels: np.ndarray

    @classmethod
    def random(cls, image_size: int, patch_size: int, seed: int) -> PatchShuffle:
        if image_size % patch_size:
            raise ValueError(f"image_size must be a multiple of patch_size, got {image_size} "
                             f"and {patch_size}.")
        rng = np.random.default_rng(seed)
        return cls(image_size, patch_size, rng.permutation((image_size // patch_size) ** 2),
                   rng.permutation(patch_size**2))

    def order(self) -> np.ndarray:
        """The flat pixel order for :func:`shuffle_images`."""
        p, g = self.patch_size, self.image_size // self.patch_size
        row, col = np.divmod(np.arange(self.image_size**2), self.image_size)
        token = self.tokens[(row // p) * g + col // p]
        pixel = self.pixels[(row % p) * p + col % p]
        return (token // g * p + pixel // p) * self.image_size + token % g * p + pixel % p


def absorb_patch_shuffle(model: MlpMixer, shuffle: PatchShuffle) -> MlpMixer:
    """A copy of ``model`` that maps original images to what ``model`` gives their shuffled
    versions: ``absorbed(x) == model(shuffle_images(x, shuffle.order()))``.

    The stem embeds every patch with one kernel, so the pixel shuffle moves into the order of
    its P² kernel rows. The tokens then arrive in the order ``tokens``; LayerNorm and channel
    mixing act on each token alone, the head averages over tokens, and token mixing absorbs
    the order into W₁'s columns and W₂'s rows and bias (Eq. (1)). Flax stores the kernels
    transposed, so those are the rows of ``fc1.kernel`` and the columns of ``fc2.kernel``.
    """
    config = model.config
    if (config.image_size, config.patch_size) != (shuffle.image_size, shuffle.patch_size):
        raise ValueError(f"{config.name} takes {config.image_size}-pixel images in "
                         f"{config.patch_size}-pixel patches; the shuffle is for "
                         f"{shuffle.image_size} and {shuffle.patch_size}.")
    to_original = np.argsort(shuffle.tokens)
    model = nnx.clone(model)
    kernel = model.stem.proj.kernel[...]  # (P, P, 3, C)
    p = config.patch_size
    flat = kernel.reshape(p * p, *kernel.shape[2:])[np.argsort(shuffle.pixels)]
    model.stem.proj.kernel[...] = flat.reshape(kernel.shape)
    for block in model.blocks:
        mlp = block.token_mixing
        mlp.fc1.kernel[...] = mlp.fc1.kernel[...][to_original]
        mlp.fc2.kernel[...] = mlp.fc2.kernel[...][:, to_original]
        mlp.fc2.bias[...] = mlp.fc2.bias[...][to_original]
    return model


# --- untied token mixing (Mixer Sec. 2) -----------------------------------------------------


# Flax's lecun_normal for a stack of C kernels: fan-in from axis -2, axis 0 indexes channels.
_per_channel_lecun_normal = nnx.initializers.lecun_normal(in_axis=-2, out_axis=-1,
                                                         batch_axis=(0,))


class UntiedTokenMixing(nnx.Module):
    """Token mixing with a separate MLP for every channel: W₁ and W₂ of Eq. (1), one pair per
    channel, (C, S, D_S) and (C, D_S, S) as kernels, C times the parameters of the tied MLP.

    The paper ties them across channels (Sec. 2) to keep the model from growing with C and
    to save memory, and reports that tying does not hurt. Takes the same (B, C, S) input as
    the tied :class:`mixer_ref.flax.MlpBlock` in a :class:`MixerBlock`; initialised like it
    (LeCun normal per channel, truncated as Flax's ``lecun_normal``, zero biases).
    """

    def __init__(self, channels: int, tokens: int, hidden_dim: int, *, dropout: float,
                 dtype=None, rngs: nnx.Rngs):
        key1, key2 = rngs.params(), rngs.params()
        init = _per_channel_lecun_normal
        self.kernel1 = nnx.Param(init(key1, (channels, tokens, hidden_dim)))
        self.bias1 = nnx.Param(jnp.zeros((channels, hidden_dim)))
        self.kernel2 = nnx.Param(init(key2, (channels, hidden_dim, tokens)))
        self.bias2 = nnx.Param(jnp.zeros((channels, tokens)))
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        params = [p[...] for p in (self.kernel1, self.bias1, self.kernel2, self.bias2)]
        if self.dtype is not None:
            params, x = [p.astype(self.dtype) for p in params], x.astype(self.dtype)
        kernel1, bias1, kernel2, bias2 = params
        h = nnx.gelu(jnp.einsum("bcs,csd->bcd", x, kernel1) + bias1, approximate=True)
        return self.dropout(jnp.einsum("bcd,cds->bcs", self.dropout(h), kernel2) + bias2)


def model_maker(config: Config) -> Callable[..., nnx.Module]:
    """``make(num_classes, dtype=, rngs=)`` for ``experiments.fit_module``: the Flax
    :class:`MlpMixer` or :class:`ResMLP` of ``config``, registered or not (any depth, width
    or image size), with ``num_classes`` outputs."""
    cls = MlpMixer if config.family == "mixer" else ResMLP

    def make(num_classes: int, *, dtype=None, rngs: nnx.Rngs) -> nnx.Module:
        return cls(dataclasses.replace(config, num_classes=num_classes), dtype=dtype, rngs=rngs)

    return make


def mixer_maker(config: MixerConfig, untied: bool = False) -> Callable[..., MlpMixer]:
    """:func:`model_maker` of a Mixer ``config``, with :class:`UntiedTokenMixing` in every
    block if ``untied``."""
    if config.family != "mixer":
        raise ValueError(f"expected a Mixer config, got {config.name} ({config.family}).")
    make_tied = model_maker(config)

    def make(num_classes: int, *, dtype=None, rngs: nnx.Rngs) -> MlpMixer:
        model = make_tied(num_classes, dtype=dtype, rngs=rngs)
        if untied:
            for block in model.blocks:
                block.token_mixing = UntiedTokenMixing(
                    config.hidden_dim, config.num_tokens, config.tokens_mlp_dim,
                    dropout=config.dropout, dtype=dtype, rngs=rngs)
        return model

    return make


# --- learned token-mixing units (Mixer Sec. 3.5, Fig. 5) -------------------------------------


def spatial_frequency(maps: np.ndarray) -> np.ndarray:
    """The power-weighted mean spatial frequency of each (…, g, g) map, in cycles per grid
    side: the radius |k| of its 2-D DFT averaged with weights |F(k)|², the mean (k = 0)
    excluded. A map cos(2π f r / g) along one axis has frequency f / g · g = f."""
    maps = np.asarray(maps, np.float64)
    g = maps.shape[-1]
    power = np.abs(np.fft.fft2(maps - maps.mean((-2, -1), keepdims=True))) ** 2
    k = np.fft.fftfreq(g, 1 / g)
    radius = np.hypot(k[:, None], k[None, :])
    total = power.sum((-2, -1))
    return np.where(total > 0, (power * radius).sum((-2, -1)) / np.where(total > 0, total, 1),
                    0.0)


def opposite_phase_pairs(units: np.ndarray) -> list[tuple[int, int]]:
    """Pairs the rows of ``units`` (D_S × S, e.g. W₁) greedily by most negative correlation,
    as Fig. 5 pairs "kernels of opposing phase", and sorts the pairs by the mean
    :func:`spatial_frequency` of their two maps (``units`` reshaped to the square grid).
    With an odd count, the last unit is left out."""
    units = np.asarray(units, np.float64)
    d, s = units.shape
    g = int(round(s**0.5))
    if g * g != s:
        raise ValueError(f"expected units over a square grid of patches, got {s} weights each.")
    corr = np.corrcoef(units)
    np.fill_diagonal(corr, np.inf)
    free, pairs = np.ones(d, bool), []
    for flat in np.argsort(corr, axis=None):
        i, j = divmod(int(flat), d)
        if i < j and free[i] and free[j]:
            pairs.append((i, j))
            free[[i, j]] = False
    freq = spatial_frequency(units.reshape(d, g, g))
    return sorted(pairs, key=lambda pair: (freq[list(pair)].mean(), pair))


# --- ResMLP's patch-interaction matrices A --------------------------------------------------


def grid_offsets(grid: int) -> tuple[np.ndarray, np.ndarray]:
    """For an S × S matrix over a row-major ``grid`` × ``grid`` patch grid (S = grid²):
    the offset (Δrow, Δcol) from output patch i to input patch j at entry (i, j), each
    shifted by grid − 1 into [0, 2·grid − 2]."""
    row, col = np.divmod(np.arange(grid * grid), grid)
    return row[None, :] - row[:, None] + grid - 1, col[None, :] - col[:, None] + grid - 1


def convolution_kernel(a: np.ndarray) -> np.ndarray:
    """The (2g − 1) × (2g − 1) kernel of A's closest convolution: entry (Δrow, Δcol), shifted
    by g − 1, is the mean of A over all pairs of patches at that offset.

    A is S × S over a row-major g × g grid, rows the output patches and columns the input
    patches, as in ResMLP's Eq. (1) (a Flax ``linear_tokens.kernel`` is Aᵀ).
    """
    a = np.asarray(a, np.float64)
    s = a.shape[0]
    g = int(round(s**0.5))
    if a.shape != (s, s) or g * g != s:
        raise ValueError(f"expected a square matrix over a square grid of patches, got "
                         f"shape {a.shape}.")
    dr, dc = grid_offsets(g)
    index = (dr * (2 * g - 1) + dc).ravel()
    sums = np.bincount(index, a.ravel(), (2 * g - 1) ** 2)
    counts = np.bincount(index, minlength=(2 * g - 1) ** 2)
    return (sums / counts).reshape(2 * g - 1, 2 * g - 1)


def toeplitz_projection(a: np.ndarray) -> np.ndarray:
    """The orthogonal (Frobenius) projection of A onto the translation-invariant matrices on
    its patch grid, those whose entry depends only on the offset between the two patches
    (2-D convolutions with zero padding; doubly block Toeplitz). The offset classes are
    disjoint, so the projection replaces each entry by its class mean."""
    kernel = convolution_kernel(a)
    dr, dc = grid_offsets(kernel.shape[0] // 2 + 1)
    return kernel[dr, dc]


def toeplitz_share(a: np.ndarray) -> float:
    """The share of A's energy ‖A‖²_F kept by :func:`toeplitz_projection`: 1 for a
    convolution, and for an A of i.i.d. Gaussian entries (2g − 1)² / g⁴ on average, the
    dimension of the subspace over that of all S × S matrices."""
    a = np.asarray(a, np.float64)
    return float((toeplitz_projection(a) ** 2).sum() / (a**2).sum())


def relative_magnitudes(w: np.ndarray) -> np.ndarray:
    """|w| / max |w| of every entry, flattened: the quantity of ResMLP's sparsity figure."""
    w = np.abs(np.asarray(w, np.float64)).ravel()
    if not w.size or w.max() == 0:
        raise ValueError(f"expected a matrix with a nonzero entry, got {w.size} zeros.")
    return w / w.max()


def small_weight_share(w: np.ndarray, threshold: float = 0.05) -> float:
    """The share of the entries of ``w`` whose magnitude is below ``threshold`` × max |w|."""
    return float((relative_magnitudes(w) < threshold).mean())
