"""Fashion-MNIST (Xiao et al., 2017): 70,000 28×28 greyscale photos of clothing, 10 classes.

The release is four gzipped IDX files (the MNIST format): 60,000 training and 10,000 test
images with their labels, 6,000 and 1,000 per class. They reach us by one of two routes, and
both are checked against the same bytes:

* **Debian's package** ``dataset-fashion-mnist`` installs them under
  ``/usr/share/datasets/fashion-mnist/`` (``make test`` installs it). Debian recompressed the
  ``.gz`` files, so their MD5s differ from the upstream README's; the decompressed payloads
  are the release.
* **Elsewhere** (Colab), they download once into ``root/fashion_mnist/`` from the dataset's
  official host, or a mirror, and each ``.gz`` must match the MD5 published in the
  Fashion-MNIST README.

Either way, each decompressed payload must match its pinned SHA-256, and the IDX header its
magic number and counts. Images become 3 identical channels; ``image_size`` above 28 pads
with black (the photos' background) around the centre, below 28 it resizes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from mixer_ref.data.dataset import ArrayDataset, check_split, resize_images
from mixer_ref.data.download import ChecksumError, Remote, fetch

NAME = "fashion_mnist"
SIZE = 28
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/")
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes


@dataclasses.dataclass(frozen=True)
class IdxFile:
    """One gzipped IDX file: where to get it, and the ``shape`` and SHA-256 of its payload."""

    remote: Remote
    payload_sha256: str
    shape: tuple[int, ...]


def _idx(filename: str, md5: str, sha256: str, shape: tuple[int, ...]) -> IdxFile:
    return IdxFile(Remote(filename, tuple(url + filename for url in URLS), f"md5:{md5}"),
                   sha256, shape)


FILES: dict[str, tuple[IdxFile, IdxFile]] = {  # split -> (images, labels)
    "train": (
        _idx("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
             (60_000, SIZE, SIZE)),
        _idx("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", (60_000,)),
    ),
    "test": (
        _idx("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
             "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
             (10_000, SIZE, SIZE)),
        _idx("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
             "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", (10_000,)),
    ),
}


def parse_idx(data: bytes, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The uint8 array of an IDX payload, which must have exactly ``shape``.

    IDX: two zero bytes, the type code (0x08, unsigned byte), the number of dimensions, one
    big-endian uint32 size per dimension, then the values in row-major order.
    """
    magic = (IDX_UBYTE << 8) | len(shape)
    header = 4 + 4 * len(shape)
    if len(data) < 4 or int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{what}: expected the IDX magic number 0x{magic:08x} (unsigned bytes, "
                         f"{len(shape)} dimensions), got 0x{data[:4].hex() or 'nothing'}.")
    if len(data) < header:
        raise ValueError(f"{what}: truncated IDX header: {len(data)} bytes, expected {header}.")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(len(shape)))
    if dims != shape:
        raise ValueError(f"{what}: expected {shape} values in the IDX header, got {dims}.")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{what}: {problem}: {len(data):,} bytes, expected {expected:,}.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read(path: Path, file: IdxFile) -> np.ndarray:
    """Decompresses, parses and verifies one IDX file."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a complete gzip file ({type(error).__name__}: {error})."
                         " Delete it to download it again.") from error
    array = parse_idx(data, file.shape, str(path))
    digest = hashlib.sha256(data).hexdigest()
    if digest != file.payload_sha256:
        raise ChecksumError(f"Checksum mismatch for the decompressed payload of {path}: expected "
                            f"sha256 {file.payload_sha256}, got {digest}.")
    return array


def locate(file: IdxFile, root: Path, download: bool) -> Path:
    """Debian's copy if installed, else the verified download in ``root/fashion_mnist``."""
    for directory in SYSTEM_DIRS:
        if (directory / file.remote.filename).is_file():
            return directory / file.remote.filename
    return fetch(file.remote, root / NAME, download)


def pad_or_resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 28, 28) greyscale → (N, size, size, 3): centred black padding, or a resize below 28."""
    if size >= SIZE:
        before = (size - SIZE) // 2
        pad = ((0, 0), (before, size - SIZE - before), (before, size - SIZE - before))
        return np.pad(images, pad)[..., None].repeat(3, axis=3)
    return resize_images(images[..., None].repeat(3, axis=3), size)


def load(split: str, root: Path, download: bool = True,
         image_size: int | None = None) -> ArrayDataset:
    """One split of Fashion-MNIST at ``image_size`` (default 28)."""
    check_split(NAME, split, tuple(FILES))
    images_file, labels_file = FILES[split]
    images = read(locate(images_file, root, download), images_file)
    labels = read(locate(labels_file, root, download), labels_file).astype(np.int32)
    return ArrayDataset(pad_or_resize(images, image_size or SIZE), labels, len(CLASS_NAMES),
                        CLASS_NAMES, NAME)
