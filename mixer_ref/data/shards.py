"""Image sets too large for memory: ArrayRecord shards, read by random access.

A shard directory holds, for each split, the encoded images (JPEG bytes, one record per
image, in label-file order) in ``<split>-NNNNN-of-NNNNN.array_record`` files written with
``group_size:1`` so that any record can be read alone, the labels in ``<split>-labels.npy``,
and ``info.json`` (class names, split sizes, file names)::

    {"format": "mixer_ref.shards/1", "class_names": ["n01440764", ...],
     "splits": {"train": {"num_examples": 1281167, "files": ["train-00000-of-01024...", ...]}}}

:func:`load_shards` returns a dataset whose ``images[indices]`` reads and decodes just
those records, so the training loop's data order (``pipeline.global_batch_indices``, a
function of ``(seed, step)``) and per-process slicing (``pipeline.process_slice``) work
unchanged: each process reads only its share of every global batch, and a resumed run
needs nothing but the step. Decoding runs in a thread pool (Pillow releases the GIL while
decoding and resizing); JAX's asynchronous dispatch overlaps it with the device step.

Images are decoded at ``image_size``: the shorter side is resized to ``image_size`` and the
centre square is kept (JPEG DCT scaling makes large images cheap to decode small).
Augmentation (random crops, flips, RandAugment, mixup) then runs on device
(``mixer_ref.data.augment``).

Paths are local: put the shards on a local disk, or mount a bucket (Cloud Storage FUSE).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

FORMAT = "mixer_ref.shards/1"
INFO_FILE = "info.json"
WRITER_OPTIONS = "group_size:1"  # one record per chunk: random access reads one image


def decode(data: bytes, image_size: int) -> np.ndarray:
    """Encoded image bytes → uint8 (image_size, image_size, 3): shorter side resized to
    ``image_size`` (antialiased bilinear), then the centre square."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (image_size, image_size))  # JPEG: decode at ≥ image_size
        image = image.convert("RGB")
        width, height = image.size
        if min(width, height) != image_size:
            scale = image_size / min(width, height)
            image = image.resize((max(image_size, round(width * scale)),
                                  max(image_size, round(height * scale))),
                                 Image.Resampling.BILINEAR)
        left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
        image = image.crop((left, top, left + image_size, top + image_size))
        return np.asarray(image, dtype=np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """uint8 (H, W, 3) → JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --- writing -------------------------------------------------------------------------------

def write_split(root: str | os.PathLike, split: str, records: Iterable[bytes],
                labels: Sequence[int], class_names: Sequence[str],
                num_shards: int = 1) -> None:
    """Writes one split: ``records[i]`` (encoded image bytes) has label ``labels[i]``.

    Records go into ``num_shards`` files of consecutive examples; ``info.json`` is created
    or updated (its class names must match).
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, np.int32)
    n = len(labels)
    if not 1 <= num_shards <= max(n, 1):
        raise ValueError(f"num_shards must lie in [1, {n}] for {n} examples, got {num_shards}.")
    if n and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"Labels must lie in [0, {len(class_names)}), got "
                         f"[{labels.min()}, {labels.max()}].")
    info = read_info(root) if (root / INFO_FILE).exists() else {
        "format": FORMAT, "class_names": list(class_names), "splits": {}}
    if info["class_names"] != list(class_names):
        raise ValueError(f"{root / INFO_FILE} lists other class names than this split's.")
    bounds = np.linspace(0, n, num_shards + 1).round().astype(int)
    files = [f"{split}-{i:05d}-of-{num_shards:05d}.array_record" for i in range(num_shards)]
    records = iter(records)
    for file, start, stop in zip(files, bounds[:-1], bounds[1:], strict=True):
        writer = ArrayRecordWriter(str(root / file), WRITER_OPTIONS)
        for _ in range(start, stop):
            record = next(records, None)
            if record is None:
                writer.close()
                raise ValueError(f"Got fewer records than the {n} labels.")
            writer.write(record)
        writer.close()
    if next(records, None) is not None:
        raise ValueError(f"Got more records than the {n} labels.")
    np.save(root / f"{split}-labels.npy", labels)
    info["splits"][split] = {"num_examples": n, "files": files}
    (root / INFO_FILE).write_text(json.dumps(info, indent=1))


def write_synthetic(root: str | os.PathLike, split: str, num_examples: int,
                    image_size: int, num_classes: int = 10, num_shards: int = 1,
                    seed: int = 0) -> None:
    """``pipeline.synthetic``'s learnable toy set, JPEG-encoded into shards."""
    from mixer_ref.data.pipeline import synthetic

    data = synthetic(num_examples, image_size, num_classes, seed, split)
    write_split(root, split, (encode_jpeg(image) for image in data.images), data.labels,
                data.class_names, num_shards)


# --- reading -------------------------------------------------------------------------------

def read_info(root: str | os.PathLike) -> dict:
    file = Path(root) / INFO_FILE
    if not file.exists():
        raise FileNotFoundError(f"No {INFO_FILE} in {str(root)!r}: expected a shard directory "
                                "written by mixer_ref.data.shards (cluster/convert_imagenet.py).")
    info = json.loads(file.read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"{file} has format {info.get('format')!r}, expected {FORMAT!r}.")
    return info


class ShardedImages:
    """``images[indices]`` → uint8 (len(indices), size, size, 3), read and decoded on demand."""

    def __init__(self, paths: Sequence[str], num_examples: int, image_size: int,
                 num_threads: int | None = None):
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        self.source = ArrayRecordDataSource(list(paths))
        if len(self.source) != num_examples:
            raise ValueError(f"The shards hold {len(self.source)} records, info.json says "
                             f"{num_examples}.")
        self.image_size = image_size
        self.pool = ThreadPoolExecutor(num_threads or os.cpu_count())

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.source), self.image_size, self.image_size, 3)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, indices) -> np.ndarray:
        keys = np.asarray(indices).reshape(-1).tolist()
        records = self.source.__getitems__(keys)
        size = self.image_size
        images = list(self.pool.map(lambda record: decode(record, size), records))
        return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)


@dataclasses.dataclass(frozen=True, eq=False)
class ShardedDataset:
    """Like ``ArrayDataset``, with ``images`` read from shards on demand."""

    images: ShardedImages
    labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return len(self.labels)


def load_shards(root: str | os.PathLike, split: str, image_size: int,
                num_threads: int | None = None) -> ShardedDataset:
    """The ``split`` of the shard directory ``root``, decoded at ``image_size``."""
    if root is None:
        raise ValueError("Sharded data needs a directory: set data.root.")
    info = read_info(root)
    if split not in info["splits"]:
        raise ValueError(f"Unknown split {split!r} in {root}: expected one of "
                         f"{tuple(info['splits'])}.")
    entry = info["splits"][split]
    labels = np.load(Path(root) / f"{split}-labels.npy")
    if labels.shape != (entry["num_examples"],):
        raise ValueError(f"{split}-labels.npy has shape {labels.shape}, info.json says "
                         f"{entry['num_examples']} examples.")
    images = ShardedImages([str(Path(root) / f) for f in entry["files"]],
                           entry["num_examples"], image_size, num_threads)
    names = tuple(info["class_names"])
    return ShardedDataset(images, labels.astype(np.int32), len(names), names,
                          f"{Path(root).name}_{split}")
