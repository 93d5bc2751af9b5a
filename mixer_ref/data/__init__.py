"""Datasets for the course, as uint8 NHWC arrays: ``load(name, split)``.

| name                | classes | splits (images)                   | size | source               |
|---------------------|---------|-----------------------------------|------|----------------------|
| ``digits``          | 10      | train 1,437 / test 360            | 32   | scikit-learn         |
| ``shapes``          | 10      | train 5,000 / test 1,000          | 32   | generated            |
| ``shapes_transfer`` | 10      | train 500 / test 1,000            | 32   | generated            |
| ``fashion_mnist``   | 10      | train 60,000 / test 10,000        | 28   | IDX gz, 30 MiB       |
| ``cifar10``         | 10      | train 50,000 / test 10,000        | 32   | binary tar, 162 MiB  |
| ``cifar100``        | 100     | train 50,000 / test 10,000        | 32   | binary tar, 161 MiB  |
| ``tiny_imagenet``   | 200     | train 100,000 / validation 10,000 | 64   | JPEG zip, 237 MiB    |
| ``oxford_pets``     | 37      | train 3,680 / test 3,669          | 64   | JPEG tars, 774 MiB   |

The first three need no network (see ``offline``); ``fashion_mnist`` reads Debian's package
``dataset-fashion-mnist`` when it is installed, and downloads otherwise (see
``fashion_mnist``); the others download once into ``root`` and cache the decoded arrays (see
``sources``). ``image_size`` resizes: Pets images, which
vary in size, are resized (shorter side) and centre-cropped as they are decoded; the others
go from their own size through an antialiased bilinear filter, except digits (nearest
neighbour, so ``image_size`` must be a multiple of 8).

Batching, sharding and augmentation live in ``pipeline`` and ``augment``.
"""

from mixer_ref.data.dataset import ArrayDataset
from mixer_ref.data.download import ChecksumError, DownloadError
from mixer_ref.data.sources import default_root, list_datasets, load

__all__ = ["ArrayDataset", "ChecksumError", "DownloadError", "default_root", "list_datasets",
           "load"]
