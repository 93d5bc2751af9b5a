"""Datasets that need no network: scikit-learn's digits and procedurally generated shapes.

``digits``: the 1,797 8×8 handwritten digits bundled with scikit-learn (10 classes), a
stratified 80/20 train/test split with a fixed seed (1,437 / 360 images). Pixels (0-16) are
scaled to 0-255 and upscaled by nearest neighbour, so ``image_size`` must be a multiple of 8:
at the default 32 with 4×4 patches, each Mixer token is exactly one original pixel.

``shapes`` and ``shapes_transfer``: coloured geometric shapes, a pretraining → fine-tuning
demo in miniature. Each image holds one shape at a random position, scale (0.35-0.65 of the
half-width) and rotation, in a random colour on a random background with a lighting
gradient and pixel noise. Colours carry no label information, so the model must learn
shape. Every class is mirror-symmetric or the only one of its kind, so labels survive flips.

* ``shapes`` (pretraining): 10 classes, 5,000 train and 1,000 test images.
* ``shapes_transfer`` (fine-tuning): 10 *different* shapes, only 50 train images per class
  (500) and 1,000 test images. The classes are disjoint from the pretraining ones, so the
  head must be replaced, but both sets share edges, corners, curvature, strokes and the same
  nuisance factors: what a pretrained token/channel mixer learns transfers, while a Mixer
  trained from scratch on 500 images overfits (Mixers need data; Tolstikhin et al., 2021,
  Sec. 3.3). Subsample the train split for few-shot curves.

Shapes are signed-distance functions rendered with one-pixel antialiasing, and each scene's
parameters are drawn before the pixel noise: image i shows the same scene at every
``image_size`` (e.g. 32 for pretraining, 64 for fine-tuning at higher resolution, Sec. 3).
Everything is deterministic, from a seed fixed per dataset and split.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import numpy as np

from mixer_ref.data.dataset import ArrayDataset, check_split

SPLITS = ("train", "test")

# --- digits ----------------------------------------------------------------------------------


def digits(split: str = "train", image_size: int | None = None) -> ArrayDataset:
    """scikit-learn's 8×8 digits, upscaled by nearest neighbour to ``image_size`` (default 32)."""
    check_split("digits", split, SPLITS)
    size = image_size or 32
    if size % 8:
        raise ValueError(f"digits: image_size must be a multiple of 8 (nearest-neighbour "
                         f"upscaling of 8×8 images), got {size}.")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    train, test = train_test_split(np.arange(len(bunch.target)), test_size=0.2, random_state=0,
                                   stratify=bunch.target)
    index = np.sort(train if split == "train" else test)
    k = size // 8
    pixels = np.rint(bunch.images[index] * (255 / 16)).astype(np.uint8)
    images = pixels.repeat(k, axis=1).repeat(k, axis=2)[..., None].repeat(3, axis=3)
    labels = bunch.target[index].astype(np.int32)
    return ArrayDataset(images, labels, 10, tuple(str(d) for d in range(10)), "digits")


# --- shapes: signed distances in shape coordinates (the shape fits the unit disk) -----------

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _circle(x, y, r, cx=0.0, cy=0.0):
    return np.hypot(x - cx, y - cy) - r


def _box(x, y, a, b, cx=0.0, cy=0.0):
    return np.maximum(np.abs(x - cx) - a, np.abs(y - cy) - b)


def _polygon(x, y, sides, apothem):
    """A regular polygon with a flat edge on top."""
    angles = 2 * np.pi * np.arange(sides) / sides + np.pi / 2
    return np.max([x * np.cos(a) + y * np.sin(a) for a in angles], axis=0) - apothem


def _ellipse(x, y, a, b):
    k = np.hypot(x / a, y / b)
    gradient = np.hypot(x / a**2, y / b**2) / np.maximum(k, 1e-6)
    return (k - 1) / np.maximum(gradient, 1e-6)


def _flower(x, y):
    """Five petals: r = R(φ) with R = 0.6 + 0.4 cos 5φ, scaled by 1/|∇(r - R)|."""
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    slope = 2.0 * np.sin(5 * phi) / np.maximum(r, 1e-6)
    return (r - 0.6 - 0.4 * np.cos(5 * phi)) / np.sqrt(1 + slope**2)


def _arrow(x, y):
    head = np.maximum(0.25 - y, 0.781 * np.abs(x) + 0.625 * (y - 1))
    return np.minimum(head, _box(x, y, 0.18, 0.5, cy=-0.35))


PRETRAIN_SHAPES: dict[str, Shape] = {
    "disk": lambda x, y: _circle(x, y, 1.0),
    "ring": lambda x, y: np.abs(_circle(x, y, 0.78)) - 0.22,
    "square": lambda x, y: _box(x, y, 0.8, 0.8),
    "frame": lambda x, y: np.abs(_box(x, y, 0.72, 0.72)) - 0.16,
    "triangle": lambda x, y: _polygon(x, y, 3, 0.5),
    "plus": lambda x, y: np.minimum(_box(x, y, 1.0, 0.3), _box(x, y, 0.3, 1.0)),
    "flower": _flower,
    "crescent": lambda x, y: np.maximum(_circle(x, y, 1.0), -_circle(x, y, 0.85, cx=0.5)),
    "bar": lambda x, y: _box(x, y, 1.0, 0.25),
    "semicircle": lambda x, y: np.maximum(_circle(x, y, 1.0, cy=-0.5), -(y + 0.5)),
}

TRANSFER_SHAPES: dict[str, Shape] = {
    "ellipse": lambda x, y: _ellipse(x, y, 1.0, 0.55),
    "two_dots": lambda x, y: np.minimum(_circle(x, y, 0.38, cx=-0.6),
                                        _circle(x, y, 0.38, cx=0.6)),
    "l_shape": lambda x, y: np.minimum(_box(x, y, 0.22, 0.9, cx=-0.45),
                                       _box(x, y, 0.67, 0.22, cy=-0.68)),
    "t_shape": lambda x, y: np.minimum(_box(x, y, 0.9, 0.22, cy=0.68), _box(x, y, 0.22, 0.9)),
    "arrow": _arrow,
    "hourglass": lambda x, y: np.maximum(np.abs(y) - 0.9, (np.abs(x) - 0.8 * np.abs(y)) / 1.28),
    "hexagon": lambda x, y: _polygon(x, y, 6, 0.87),
    "triangle_outline": lambda x, y: np.abs(_polygon(x, y, 3, 0.42)) - 0.1,
    "arc": lambda x, y: np.maximum(np.abs(_circle(x, y, 0.78, cy=-0.5)) - 0.22, -(y + 0.5)),
    "bullseye": lambda x, y: np.minimum(_circle(x, y, 0.3), np.abs(_circle(x, y, 0.8)) - 0.18),
}


def render_shapes(labels: np.ndarray, shapes: list[Shape], size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Renders one random scene per label: uint8 images of shape (N, size, size, 3).

    Scene parameters are drawn first and pixel noise last, so a generator in the same
    state renders the same scenes at any ``size``.
    """
    n = len(labels)
    scale = rng.uniform(0.35, 0.65, n).astype(np.float32)
    centre = (rng.uniform(-1, 1, (n, 2)) * (1 - scale[:, None])).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    background = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    foreground = (background + rng.uniform(0.3, 0.7, (n, 3)).astype(np.float32)) % 1.0
    light = rng.uniform(0, 0.25, n).astype(np.float32)
    light_angle = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    noise_std = rng.uniform(0.02, 0.1, n).astype(np.float32)

    t = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1  # pixel centres in (-1, 1)
    u, v = t[None, None, :], -t[None, :, None]                      # x right, y up
    per_image = lambda a: a[:, None, None]  # noqa: E731
    dx, dy = u - per_image(centre[:, 0]), v - per_image(centre[:, 1])
    cos, sin = per_image(np.cos(angle)), per_image(np.sin(angle))
    x, y = (cos * dx + sin * dy) / per_image(scale), (cos * dy - sin * dx) / per_image(scale)

    distance = np.empty((n, size, size), np.float32)
    for k, shape in enumerate(shapes):
        mask = labels == k
        distance[mask] = shape(x[mask], y[mask])
    # Coverage of each pixel: the signed distance in pixels, clipped to a one-pixel ramp.
    alpha = np.clip(0.5 - distance * per_image(scale) * (size / 2), 0, 1)[..., None]
    image = background[:, None, None] + (foreground - background)[:, None, None] * alpha
    image += (per_image(light) * 0.5 * (per_image(np.cos(light_angle)) * u
                                         + per_image(np.sin(light_angle)) * v))[..., None]
    # Uniform pixel noise of standard deviation noise_std (cheaper to draw than Gaussian).
    noise = rng.random(image.shape, dtype=np.float32) - 0.5
    image += noise * (np.sqrt(12) * noise_std)[:, None, None, None]
    np.clip(image, 0, 1, out=image)
    image *= 255
    image += 0.5  # round to nearest on the cast below
    return image.astype(np.uint8)


def shapes(name: str, classes: dict[str, Shape], split_sizes: dict[str, int],
           split: str = "train", image_size: int | None = None) -> ArrayDataset:
    """A balanced, shuffled set of rendered ``classes``, deterministic per (name, split)."""
    check_split(name, split, tuple(split_sizes))
    rng = np.random.default_rng(zlib.crc32(f"{name}/{split}".encode()))
    n, k = split_sizes[split], len(classes)
    labels = rng.permutation(np.arange(n) % k).astype(np.int32)
    images = render_shapes(labels, list(classes.values()), image_size or 32, rng)
    return ArrayDataset(images, labels, k, tuple(classes), name)


OFFLINE: dict[str, Callable[[str, int | None], ArrayDataset]] = {
    "digits": digits,
    "shapes": functools.partial(shapes, "shapes", PRETRAIN_SHAPES,
                                {"train": 5000, "test": 1000}),
    "shapes_transfer": functools.partial(shapes, "shapes_transfer", TRANSFER_SHAPES,
                                         {"train": 500, "test": 1000}),
}
