"""On-device augmentation, written in jax.numpy so that it runs inside the jitted train step.

Everything takes a PRNG key and a batch of float images in [0, 1], NHWC, and is a pure
function of the key: the same key gives the same batch. The training loop derives its key
from ``jax.random.fold_in(jax.random.key(seed), step)``.

* :func:`random_crop` (pad then crop, CIFAR style) and :func:`random_resized_crop`
  (Inception style, as big_vision's ``inception_crop``), :func:`random_flip`.
* :func:`rand_augment`: RandAugment (Cubuk et al., 2020), N ops of magnitude M on the
  reference 0-10 scale; 13 of its 14 ops (Equalize is left out). As in the TF reference
  that big_vision uses, M > 10 extrapolates the geometric ops (the Mixer paper's M = 15
  translates by up to 0.68 of the width); enhancement factors stay within [0.1, 1 + 0.9 M/10].
* :func:`mixup` and :func:`cutmix` on soft targets; :func:`mix` picks one per batch.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

GRAY = 0.5  # fill value of the geometric ops (128 in the TF reference)


def to_float(images: jax.Array) -> jax.Array:
    """uint8 pixels to float32 in [0, 1]."""
    return images.astype(jnp.float32) / 255.0


def normalize(images: jax.Array) -> jax.Array:
    """[0, 1] to the models' input range [-1, 1] (the official x / 127.5 - 1)."""
    return images * 2.0 - 1.0


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Flips each image left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1], images)


def random_crop(key: jax.Array, images: jax.Array, padding: int) -> jax.Array:
    """Reflect-pads by ``padding`` pixels and crops back to the original size at random."""
    b, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                     mode="reflect")
    offsets = jax.random.randint(key, (b, 2), 0, 2 * padding + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


def _sample(image: jax.Array, rows: jax.Array, cols: jax.Array, mode: str) -> jax.Array:
    """Bilinear sampling of an (H, W, C) image at float pixel coordinates."""
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(  # noqa: E731
        channel, [rows, cols], order=1, mode=mode, cval=GRAY)
    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def random_resized_crop(key: jax.Array, images: jax.Array, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> jax.Array:
    """Crops a random box of ``scale`` × the area and aspect ``ratio``, resized back."""
    b, h, w, _ = images.shape
    k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
    area = h * w * jax.random.uniform(k_area, (b,), minval=scale[0], maxval=scale[1])
    log_r = jax.random.uniform(k_ratio, (b,), minval=math.log(ratio[0]),
                               maxval=math.log(ratio[1]))
    ch = jnp.clip(jnp.sqrt(area / jnp.exp(log_r)), 1.0, h)
    cw = jnp.clip(jnp.sqrt(area * jnp.exp(log_r)), 1.0, w)
    y0 = jax.random.uniform(k_y, (b,)) * (h - ch)
    x0 = jax.random.uniform(k_x, (b,)) * (w - cw)
    grid_r, grid_c = jnp.meshgrid(jnp.arange(h) + 0.5, jnp.arange(w) + 0.5, indexing="ij")

    def crop(img, y0, x0, ch, cw):
        return _sample(img, y0 + grid_r * ch / h - 0.5, x0 + grid_c * cw / w - 0.5, "nearest")

    return jax.vmap(crop)(images, y0, x0, ch, cw)


# --- RandAugment -----------------------------------------------------------------------------
# Each op maps (image, level, sign) to an image; level = M / 10, sign = ±1 at random.

def _affine(img, matrix, offset):
    """Output pixel p samples the input at matrix @ (p - centre) + centre + offset."""
    h, w, _ = img.shape
    rows, cols = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2,
                              indexing="ij")
    src_r = matrix[0][0] * rows + matrix[0][1] * cols + (h - 1) / 2 + offset[0]
    src_c = matrix[1][0] * rows + matrix[1][1] * cols + (w - 1) / 2 + offset[1]
    return _sample(img, src_r, src_c, "constant")


def _blend(degenerate, img, factor):
    return jnp.clip(degenerate + factor * (img - degenerate), 0.0, 1.0)


def _gray(img):
    return (img @ jnp.array([0.299, 0.587, 0.114]))[..., None]


def _identity(img, level, sign):
    return img


def _auto_contrast(img, level, sign):
    lo, hi = img.min(axis=(0, 1)), img.max(axis=(0, 1))
    scale = jnp.where(hi > lo, 1.0 / jnp.maximum(hi - lo, 1e-6), 1.0)
    return jnp.where(hi > lo, (img - lo) * scale, img)


def _rotate(img, level, sign):
    t = sign * jnp.deg2rad(30.0) * level
    return _affine(img, [[jnp.cos(t), -jnp.sin(t)], [jnp.sin(t), jnp.cos(t)]], [0.0, 0.0])


def _solarize(img, level, sign):
    return jnp.where(img >= 1.0 - min(level, 1.0), 1.0 - img, img)


def _posterize(img, level, sign):
    shift = 2 ** min(round(4 * level), 7)
    return jnp.floor(img * 255.0 / shift) * shift / 255.0


def _factor(level, sign):
    """Enhancement factor 1 ± 0.9 M/10, floored at 0.1 (the reference range at M = 10)."""
    return jnp.maximum(1.0 + sign * 0.9 * level, 0.1)


def _color(img, level, sign):
    return _blend(_gray(img), img, _factor(level, sign))


def _contrast(img, level, sign):
    return _blend(_gray(img).mean(), img, _factor(level, sign))


def _brightness(img, level, sign):
    return _blend(jnp.zeros_like(img), img, _factor(level, sign))


def _sharpness(img, level, sign):
    kernel = jnp.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    padded = jnp.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w, _ = img.shape
    blurred = sum(kernel[i, j] * padded[i:i + h, j:j + w] for i in range(3) for j in range(3))
    return _blend(blurred, img, _factor(level, sign))


def _shear_x(img, level, sign):
    return _affine(img, [[1.0, 0.0], [sign * 0.3 * level, 1.0]], [0.0, 0.0])


def _shear_y(img, level, sign):
    return _affine(img, [[1.0, sign * 0.3 * level], [0.0, 1.0]], [0.0, 0.0])


def _translate_x(img, level, sign):
    return _affine(img, [[1.0, 0.0], [0.0, 1.0]], [0.0, sign * 0.45 * level * img.shape[1]])


def _translate_y(img, level, sign):
    return _affine(img, [[1.0, 0.0], [0.0, 1.0]], [sign * 0.45 * level * img.shape[0], 0.0])


RAND_AUGMENT_OPS = (
    _identity, _auto_contrast, _rotate, _solarize, _color, _posterize, _contrast,
    _brightness, _sharpness, _shear_x, _shear_y, _translate_x, _translate_y,
)


def rand_augment(key: jax.Array, images: jax.Array, num_ops: int,
                 magnitude: float) -> jax.Array:
    """Applies ``num_ops`` ops drawn uniformly per image, each at ``magnitude`` / 10."""
    ops = [functools.partial(op, level=magnitude / 10.0) for op in RAND_AUGMENT_OPS]
    branches = [lambda x, sign, op=op: op(x, sign=sign) for op in ops]

    def one(key, img):
        for k in jax.random.split(key, num_ops):
            k_op, k_sign = jax.random.split(k)
            sign = jnp.where(jax.random.bernoulli(k_sign), 1.0, -1.0)
            index = jax.random.randint(k_op, (), 0, len(ops))
            img = jax.lax.switch(index, branches, img, sign)
        return jnp.clip(img, 0.0, 1.0)

    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)


# --- mixing ----------------------------------------------------------------------------------

def mixup(key: jax.Array, images: jax.Array, targets: jax.Array, alpha: float):
    """Mixup (Zhang et al., 2018): one λ ~ Beta(α, α) per batch; the partner of example i
    is example B-1-i."""
    lam = jax.random.beta(key, alpha, alpha)
    return (lam * images + (1 - lam) * images[::-1],
            lam * targets + (1 - lam) * targets[::-1])


def cutmix(key: jax.Array, images: jax.Array, targets: jax.Array, alpha: float):
    """CutMix (Yun et al., 2019): pastes a box of area 1-λ from the partner image; the
    targets mix by the box's actual area."""
    _, h, w, _ = images.shape
    k_lam, k_y, k_x = jax.random.split(key, 3)
    cut = jnp.sqrt(1.0 - jax.random.beta(k_lam, alpha, alpha))
    cy, cx = jax.random.uniform(k_y) * h, jax.random.uniform(k_x) * w
    rows, cols = jnp.arange(h)[:, None] + 0.5, jnp.arange(w)[None, :] + 0.5
    box = (jnp.abs(rows - cy) < cut * h / 2) & (jnp.abs(cols - cx) < cut * w / 2)
    lam = 1.0 - box.mean()
    images = jnp.where(box[None, :, :, None], images[::-1], images)
    return images, lam * targets + (1 - lam) * targets[::-1]


def mix(key: jax.Array, images: jax.Array, targets: jax.Array, mixup_alpha: float,
        cutmix_alpha: float):
    """Mixup, CutMix, or (both α > 0) one of them per batch with probability 1/2 each."""
    if mixup_alpha > 0 and cutmix_alpha > 0:
        k_choice, k_mixup, k_cutmix = jax.random.split(key, 3)
        a = mixup(k_mixup, images, targets, mixup_alpha)
        b = cutmix(k_cutmix, images, targets, cutmix_alpha)
        use_cutmix = jax.random.bernoulli(k_choice)
        return tuple(jnp.where(use_cutmix, y, x) for x, y in zip(a, b, strict=True))
    if mixup_alpha > 0:
        return mixup(key, images, targets, mixup_alpha)
    if cutmix_alpha > 0:
        return cutmix(key, images, targets, cutmix_alpha)
    return images, targets


def augment(key: jax.Array, images: jax.Array, *, crop: str = "none", crop_padding: int = 4,
            flip: bool = False, randaug_num_ops: int = 0,
            randaug_magnitude: float = 0.0) -> jax.Array:
    """The per-image augmentations in order: crop, flip, RandAugment. [0, 1] in and out."""
    k_crop, k_flip, k_rand = jax.random.split(key, 3)
    if crop == "pad":
        images = random_crop(k_crop, images, crop_padding)
    elif crop == "resized":
        images = random_resized_crop(k_crop, images)
    elif crop != "none":
        raise ValueError(f"crop must be 'none', 'pad' or 'resized', got {crop!r}.")
    if flip:
        images = random_flip(k_flip, images)
    if randaug_num_ops:
        images = rand_augment(k_rand, images, randaug_num_ops, randaug_magnitude)
    return images
