"""Batching and sharding: which examples make up step ``t``, and on which devices.

The data order is a pure function of ``(seed, step)``: epoch ``e`` visits the examples in a
permutation drawn from ``(seed, e)``, and step ``t`` takes the ``t``-th slice of its epoch's
permutation (the remainder of an epoch is dropped). A run resumed at step ``t`` therefore
sees exactly the batches an uninterrupted run sees, whatever the number of processes.

With several processes, each loads only its contiguous share of the global batch and
:func:`global_batch` assembles the global ``jax.Array`` with
``jax.make_array_from_process_local_data``. Images travel as uint8 and are converted and
augmented on device (``mixer_ref.data.augment``).
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np

from mixer_ref.data.dataset import ArrayDataset


def global_batch_indices(num_examples: int, global_batch: int, seed: int,
                         step: int) -> np.ndarray:
    """The example indices of the global batch at ``step``, shape ``(global_batch,)``."""
    if global_batch > num_examples:
        raise ValueError(f"The global batch ({global_batch}) is larger than the dataset "
                         f"({num_examples} examples); lower batch_size.")
    steps_per_epoch = num_examples // global_batch
    epoch, i = divmod(step, steps_per_epoch)
    permutation = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return permutation[i * global_batch:(i + 1) * global_batch]


def process_slice(global_indices: np.ndarray, process_index: int | None = None,
                  process_count: int | None = None) -> np.ndarray:
    """This process's contiguous share of a global batch."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    n = len(global_indices)
    if n % count:
        raise ValueError(f"The global batch ({n}) must divide evenly over {count} processes.")
    share = n // count
    return global_indices[index * share:(index + 1) * share]


def global_batch(arrays: dict[str, np.ndarray], global_indices: np.ndarray,
                 sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
    """Gathers this process's rows of every array and assembles the global batch.

    ``sharding`` splits the leading (batch) axis over the devices, e.g.
    ``NamedSharding(mesh, PartitionSpec("data"))``.
    """
    local = process_slice(global_indices)
    out = {}
    for name, array in arrays.items():
        rows = np.asarray(array[local])
        shape = (len(global_indices),) + rows.shape[1:]
        out[name] = jax.make_array_from_process_local_data(sharding, rows, shape)
    return out


def eval_batches(num_examples: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every example once, in order: ``(indices, mask)`` per batch, the last one padded
    with example 0 and ``mask`` False on the padding."""
    for start in range(0, num_examples, batch_size):
        indices = np.arange(start, start + batch_size)
        mask = indices < num_examples
        yield np.where(mask, indices, 0), mask


def synthetic(num_examples: int, image_size: int, num_classes: int, seed: int = 0,
              split: str = "train") -> ArrayDataset:
    """A learnable toy set: each class is a fixed smooth colour pattern, plus pixel noise.

    The patterns depend on ``seed`` only; the noise also depends on ``split``.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (num_classes, 4, 4, 3))
    templates = coarse.repeat(-(-image_size // 4), 1).repeat(-(-image_size // 4), 2)
    templates = templates[:, :image_size, :image_size]
    noise_rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = noise_rng.integers(0, num_classes, num_examples).astype(np.int32)
    noise = noise_rng.normal(0, 40, (num_examples, image_size, image_size, 3))
    images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
    names = tuple(f"pattern_{i}" for i in range(num_classes))
    return ArrayDataset(images, labels, num_classes, names, f"synthetic_{split}")
