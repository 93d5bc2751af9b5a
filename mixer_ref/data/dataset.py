"""The in-memory dataset every source returns, and the resize behind ``image_size``."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A labelled image set held in memory.

    ``images`` are uint8 pixels in NHWC layout, shape (N, H, W, 3); ``labels`` are int32 class
    indices in [0, ``num_classes``), shape (N,); ``class_names[i]`` names class i.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{self.name}: expected uint8 images of shape (N, H, W, 3), got "
                             f"{images.dtype} {images.shape}.")
        if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
            raise ValueError(f"{self.name}: expected int32 labels of shape {images.shape[:1]}, "
                             f"got {labels.dtype} {labels.shape}.")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.name}: expected {self.num_classes} class names, got "
                             f"{len(self.class_names)}.")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{self.name}: labels must lie in [0, {self.num_classes}), got "
                             f"[{labels.min()}, {labels.max()}].")

    def __len__(self) -> int:
        return len(self.labels)


def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix of a bilinear resize along one axis.

    Pixel centres sit at half-integers. When shrinking, the triangle filter is widened by the
    scale factor so that every input pixel contributes (antialiasing, as Pillow does).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    distance = (np.arange(n_in) + 0.5)[None, :] - centres[:, None]
    weights = np.clip(1.0 - np.abs(distance) / support, 0.0, None)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_images(images: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """Resizes uint8 NHWC ``images`` to ``size`` × ``size`` with an antialiased bilinear filter.

    Works in chunks of ``chunk`` images to bound the float32 working memory.
    """
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    rows, cols = _triangle_weights(h, size), _triangle_weights(w, size)
    out = np.empty((n, size, size, c), np.uint8)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].astype(np.float32)
        x = np.einsum("oh,nhwc->nowc", rows, x)
        x = np.einsum("pw,nowc->nopc", cols, x)
        out[start:start + chunk] = np.clip(np.rint(x), 0, 255)
    return out


def check_split(name: str, split: str, splits: tuple[str, ...] | list[str]) -> None:
    """Raises ``ValueError`` unless ``split`` is one of the dataset's ``splits``."""
    if split not in splits:
        raise ValueError(f"Unknown split {split!r} for {name}: expected one of {tuple(splits)}.")
