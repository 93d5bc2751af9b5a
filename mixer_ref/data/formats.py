"""Readers for the archives' on-disk formats; nothing is extracted to disk, nothing unpickled.

Every reader takes the verified archive paths and the image size to decode at, and returns
``(splits, class_names)`` with ``splits[name] = (images, labels)``: uint8 NHWC images and
int32 labels. A damaged archive raises ``ValueError``, never a partial dataset.

* CIFAR-10 / CIFAR-100, the *binary* versions (Krizhevsky, 2009): fixed-size records of
  label byte(s) followed by 3,072 pixel bytes, the 1,024 red, then green, then blue values
  of a 32×32 image in row-major order. CIFAR-100 records carry the coarse label, then the
  fine label; we use the fine one.
* Tiny ImageNet (Stanford CS231N): a zip of 64×64 JPEGs, ``train/<wnid>/images/*.JPEG`` and
  ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt``.
* Oxford-IIIT Pets (Parkhi et al., 2012): ``images/<Breed>_<n>.jpg`` of varying size, split by
  ``annotations/trainval.txt`` and ``annotations/test.txt``.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

Split = tuple[np.ndarray, np.ndarray]
Reader = Callable[[Sequence[Path], int], tuple[dict[str, Split], tuple[str, ...]]]

CIFAR_PIXELS = 3 * 32 * 32


def _corrupt(archive: Path, error: Exception) -> ValueError:
    return ValueError(f"{archive} is corrupt or truncated ({type(error).__name__}: {error}). "
                      "Delete it to download it again.")


def _tar_files(archive: Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yields ``(name, contents)`` of the regular files of a .tar.gz that ``keep`` selects.

    Reads the whole archive, so a truncation anywhere raises ``ValueError``.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and keep(member.name):
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise _corrupt(archive, error) from error


def _lines(data: bytes) -> list[str]:
    return [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]


def _decode(data: bytes, size: int, what: str) -> np.ndarray:
    """Decodes an image to RGB, resizes its shorter side to ``size`` and centre-crops it."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when possible
            image = image.convert("RGB")
    except OSError as error:  # PIL.UnidentifiedImageError and truncated files are OSErrors
        raise ValueError(f"Cannot decode {what}: {error}") from error
    if image.size != (size, size):
        image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


# --- CIFAR -----------------------------------------------------------------------------------


def _cifar_records(data: bytes, label_bytes: int, num_classes: int, what: str) -> Split:
    """Parses records of ``label_bytes`` label bytes (the last one is used) + 3,072 pixels."""
    record = label_bytes + CIFAR_PIXELS
    if len(data) % record:
        raise ValueError(f"{what} holds {len(data)} bytes, not a whole number of {record}-byte "
                         "records: the archive is truncated or not the binary version.")
    rows = np.frombuffer(data, np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int32)
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"{what}: label {labels.max()} is out of range for {num_classes} "
                         "classes.")
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_cifar(archive: Path, folder: str, train: Sequence[str], test: str, names_file: str,
                label_bytes: int, num_classes: int):
    members = [*train, test, names_file]
    wanted = {f"{folder}/{m}" for m in members}
    files = dict(_tar_files(archive, wanted.__contains__))
    missing = sorted(wanted - set(files))
    if missing:
        raise ValueError(f"{archive} lacks {missing}: not the CIFAR binary archive?")
    names = tuple(_lines(files[f"{folder}/{names_file}"]))
    if len(names) != num_classes:
        raise ValueError(f"{names_file} in {archive} lists {len(names)} class names, expected "
                         f"{num_classes}.")
    parts = [_cifar_records(files[f"{folder}/{m}"], label_bytes, num_classes, f"{archive}:{m}")
             for m in members[:-1]]
    *train_parts, test_split = parts
    train_split = (np.concatenate([p[0] for p in train_parts]),
                   np.concatenate([p[1] for p in train_parts]))
    return {"train": train_split, "test": test_split}, names


def read_cifar10(paths: Sequence[Path], image_size: int = 32):
    """``cifar-10-binary.tar.gz``: ``data_batch_{1..5}.bin``, ``test_batch.bin`` and the class
    names in ``batches.meta.txt``, under ``cifar-10-batches-bin/``."""
    (archive,) = paths
    batches = [f"data_batch_{i}.bin" for i in range(1, 6)]
    return _read_cifar(archive, "cifar-10-batches-bin", batches, "test_batch.bin",
                       "batches.meta.txt", 1, 10)


def read_cifar100(paths: Sequence[Path], image_size: int = 32):
    """``cifar-100-binary.tar.gz``: ``train.bin``, ``test.bin`` and ``fine_label_names.txt``
    under ``cifar-100-binary/``; the 100 fine labels."""
    (archive,) = paths
    return _read_cifar(archive, "cifar-100-binary", ["train.bin"], "test.bin",
                       "fine_label_names.txt", 2, 100)


# --- Tiny ImageNet ---------------------------------------------------------------------------

TINY_ROOT = "tiny-imagenet-200"


def read_tiny_imagenet(paths: Sequence[Path], image_size: int = 64):
    """``tiny-imagenet-200.zip``. Classes are the sorted WordNet ids of ``wnids.txt``, named by
    the first synonym in ``words.txt``. Splits: ``train`` and ``validation`` (the labelled
    ``val/`` set; the official test set has no labels)."""
    (archive,) = paths
    try:
        with zipfile.ZipFile(archive) as zf:
            wnids = sorted(_lines(zf.read(f"{TINY_ROOT}/wnids.txt")))
            words = dict(line.split("\t", 1) for line in _lines(zf.read(f"{TINY_ROOT}/words.txt"))
                         if "\t" in line)
            index = {wnid: i for i, wnid in enumerate(wnids)}
            missing = [w for w in wnids if w not in words]
            if missing:
                raise ValueError(f"{archive}: words.txt does not name {missing[:5]}.")
            names = tuple(words[w].split(",")[0].strip() for w in wnids)

            train = sorted(n for n in zf.namelist()
                           if n.startswith(f"{TINY_ROOT}/train/") and n.endswith(".JPEG"))
            train_wnids = [n.split("/")[2] for n in train]
            annotations = [line.split("\t")
                           for line in _lines(zf.read(f"{TINY_ROOT}/val/val_annotations.txt"))]
            val = [f"{TINY_ROOT}/val/images/{fields[0]}" for fields in annotations]
            val_wnids = [fields[1] for fields in annotations]
            unknown = sorted(set(train_wnids + val_wnids) - set(index))
            if unknown:
                raise ValueError(f"{archive}: images of classes {unknown[:5]} not in wnids.txt.")

            def decode(members: list[str], desc: str) -> np.ndarray:
                images = np.empty((len(members), image_size, image_size, 3), np.uint8)
                for i, name in enumerate(tqdm(members, desc=desc, disable=None)):
                    images[i] = _decode(zf.read(name), image_size, f"{archive}:{name}")
                return images

            splits = {
                "train": (decode(train, "decode train"),
                          np.array([index[w] for w in train_wnids], np.int32)),
                "validation": (decode(val, "decode validation"),
                               np.array([index[w] for w in val_wnids], np.int32)),
            }
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError) as error:
        raise _corrupt(archive, error) from error
    return splits, names


# --- Oxford-IIIT Pets ------------------------------------------------------------------------


def read_pets(paths: Sequence[Path], image_size: int):
    """``images.tar.gz`` and ``annotations.tar.gz``. Splits: ``train`` (the official trainval
    list) and ``test``; 37 breeds, in the order of their class ids. Images are resized so
    that the shorter side is ``image_size``, then centre-cropped."""
    images_archive, annotations_archive = paths
    lists = {"train": "annotations/trainval.txt", "test": "annotations/test.txt"}
    files = dict(_tar_files(annotations_archive, set(lists.values()).__contains__))
    if set(files) != set(lists.values()):
        raise ValueError(f"{annotations_archive} lacks {sorted(set(lists.values()) - set(files))}.")
    entries, breeds = {}, {}
    for split, member in lists.items():
        rows = [line.split() for line in _lines(files[member]) if not line.startswith("#")]
        entries[split] = [(row[0], int(row[1]) - 1) for row in rows]  # "<image> <class id> ..."
        for image, label in entries[split]:
            breed = image.rsplit("_", 1)[0]
            if breeds.setdefault(label, breed) != breed:
                raise ValueError(f"{member}: class {label + 1} is both {breeds[label]} and "
                                 f"{breed}.")
    if sorted(breeds) != list(range(len(breeds))):
        raise ValueError(f"{annotations_archive}: class ids are not 1..{len(breeds)}.")
    names = tuple(breeds[i] for i in range(len(breeds)))

    wanted = {f"images/{image}.jpg" for split in entries.values() for image, _ in split}
    decoded = {}
    for name, data in tqdm(_tar_files(images_archive, wanted.__contains__), total=len(wanted),
                           desc="decode", disable=None):
        decoded[name] = _decode(data, image_size, f"{images_archive}:{name}")
    missing = sorted(wanted - set(decoded))
    if missing:
        raise ValueError(f"{images_archive} lacks {len(missing)} listed images, e.g. "
                         f"{missing[:3]}.")
    splits = {split: (np.stack([decoded[f"images/{image}.jpg"] for image, _ in rows]),
                      np.array([label for _, label in rows], np.int32))
              for split, rows in entries.items()}
    return splits, names
