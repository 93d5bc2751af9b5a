"""mixer_ref.data: the dataset contract, the offline datasets and the archive readers.

The readers run on small archives in the real on-disk formats, served from 127.0.0.1
(``data_fixtures``); nothing here touches the network.
"""

import dataclasses
import functools
import gzip
import hashlib
import re

import numpy as np
import pytest
from data_fixtures import (
    CIFAR10_NAMES,
    PETS_BREEDS,
    FileServer,
    cifar10_archive,
    cifar100_archive,
    pets_archives,
    serve_dataset,
    tar_gz,
    tiny_imagenet_archive,
)

from mixer_ref import data
from mixer_ref.data import ArrayDataset, ChecksumError, DownloadError, fashion_mnist
from mixer_ref.data.dataset import resize_images
from mixer_ref.data.download import Remote
from mixer_ref.data.offline import PRETRAIN_SHAPES, TRANSFER_SHAPES, render_shapes

# --- the contract -----------------------------------------------------------------------------


def test_list_datasets_names_every_loadable_dataset():
    assert data.list_datasets() == ["digits", "shapes", "shapes_transfer", "fashion_mnist",
                                    "cifar10", "cifar100", "tiny_imagenet", "oxford_pets"]


def _dataset(**changes):
    fields = dict(images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.arange(4, dtype=np.int32),
                  num_classes=4, class_names=("a", "b", "c", "d"), name="toy")
    return ArrayDataset(**{**fields, **changes})


def test_array_dataset_holds_uint8_nhwc_and_int32_labels():
    ds = _dataset()
    assert len(ds) == 4
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen


@pytest.mark.parametrize("changes, message", [
    (dict(images=np.zeros((4, 8, 8, 3), np.float32)), "uint8 images of shape"),
    (dict(images=np.zeros((4, 3, 8, 8), np.uint8)), r"\(N, H, W, 3\)"),
    (dict(labels=np.arange(4)), "int32 labels"),
    (dict(labels=np.arange(3, dtype=np.int32)), r"shape \(4,\)"),
    (dict(labels=np.array([0, 1, 2, 4], np.int32)), r"labels must lie in \[0, 4\)"),
    (dict(class_names=("a", "b")), "expected 4 class names, got 2"),
])
def test_array_dataset_rejects_what_breaks_the_contract(changes, message):
    with pytest.raises(ValueError, match=message):
        _dataset(**changes)


def test_unknown_names_and_splits_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar-10'.*Close matches: cifar10"):
        data.load("cifar-10")
    with pytest.raises(ValueError, match=r"Unknown split 'val' for digits.*'train', 'test'"):
        data.load("digits", "val")
    with pytest.raises(ValueError, match="expected one of \\('train', 'validation'\\)"):
        data.load("tiny_imagenet", "test", download=False)


def test_root_defaults_to_mixer_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXER_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("MIXER_DATA")
    assert str(data.default_root()).endswith(".cache/mixer_ref/data")
    monkeypatch.setenv("MIXER_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "cifar10"))):
        data.load("cifar10", download=False)


# --- resizing ---------------------------------------------------------------------------------


def test_resize_keeps_constants_and_size():
    images = np.full((2, 32, 32, 3), 77, np.uint8)
    assert resize_images(images, 32) is images
    for size in (13, 64):
        out = resize_images(images, size)
        assert out.shape == (2, size, size, 3) and out.dtype == np.uint8
        assert np.all(out == 77)


def test_resize_antialiases_when_shrinking():
    """A one-pixel checkerboard shrunk 3× is uniform grey, not a new pattern (aliasing)."""
    board = (np.indices((48, 48)).sum(0) % 2 * 255).astype(np.uint8)
    out = resize_images(np.repeat(board[None, ..., None], 3, axis=3), 16)
    assert np.abs(out[:, 1:-1, 1:-1].astype(int) - 128).max() <= 3  # the edges renormalise


# --- digits -----------------------------------------------------------------------------------


def test_digits_is_a_stratified_80_20_split():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    for ds in (train, test):
        assert ds.images.shape[1:] == (32, 32, 3) and ds.images.dtype == np.uint8
        assert ds.labels.dtype == np.int32 and ds.num_classes == 10
        assert ds.class_names == tuple("0123456789")
    assert np.all(np.abs(np.bincount(test.labels) - 36) <= 1)
    np.testing.assert_array_equal(data.load("digits", "test").images, test.images)


def test_digits_upscale_by_nearest_neighbour_to_multiples_of_8():
    small, big = data.load("digits", "test", image_size=8), data.load("digits", "test")
    np.testing.assert_array_equal(big.images, small.images.repeat(4, 1).repeat(4, 2))
    assert np.all(small.images[..., 0] == small.images[..., 2])  # gray in 3 channels
    assert small.images.max() == 255
    with pytest.raises(ValueError, match="multiple of 8"):
        data.load("digits", image_size=30)


# --- shapes -----------------------------------------------------------------------------------


cached_load = functools.cache(data.load)


@pytest.mark.parametrize("name, sizes", [("shapes", (5000, 1000)),
                                         ("shapes_transfer", (500, 1000))])
def test_shapes_are_balanced_and_deterministic(name, sizes):
    train, test = cached_load(name, "train"), cached_load(name, "test")
    assert (len(train), len(test)) == sizes
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int32
    assert np.all(np.bincount(train.labels, minlength=10) == sizes[0] // 10)
    again = data.load(name, "test")
    np.testing.assert_array_equal(again.images, test.images)
    np.testing.assert_array_equal(again.labels, test.labels)
    assert not np.array_equal(train.images[:100], test.images[:100])


def test_transfer_shapes_are_new_classes():
    assert cached_load("shapes_transfer", "test").class_names == tuple(TRANSFER_SHAPES)
    assert cached_load("shapes", "test").class_names == tuple(PRETRAIN_SHAPES)
    assert not set(PRETRAIN_SHAPES) & set(TRANSFER_SHAPES)


def test_shapes_show_the_same_scene_at_every_resolution():
    small = cached_load("shapes_transfer", "test").images.astype(float)
    big = data.load("shapes_transfer", "test", image_size=64).images
    down = resize_images(big, 32).astype(float)
    same = np.abs(down - small).mean()
    shuffled = np.abs(down - np.roll(small, 1, axis=0)).mean()
    assert same < shuffled / 3


def test_labels_reach_the_pixels_only_through_the_shape():
    """Position, size, rotation, colours and noise are drawn independently of the label:
    with every class drawn as a disk, the labels change nothing."""
    disks = [PRETRAIN_SHAPES["disk"]] * 10
    labels = np.arange(200, dtype=np.int32) % 10
    mixed = render_shapes(labels, disks, 32, np.random.default_rng(0))
    same = render_shapes(np.zeros_like(labels), disks, 32, np.random.default_rng(0))
    np.testing.assert_array_equal(mixed, same)


# --- readers, fed by a local server -----------------------------------------------------------


@pytest.fixture
def server():
    with FileServer({}) as s:
        yield s


def test_cifar10_binary_records_become_nhwc_images(server, monkeypatch, tmp_path):
    archive, expected = cifar10_archive()
    serve_dataset(monkeypatch, server, "cifar10", {"cifar-10-binary.tar.gz": archive},
                  {"train": 20, "test": 6})
    for split in ("train", "test"):
        ds = data.load("cifar10", split, root=tmp_path)
        np.testing.assert_array_equal(ds.images, expected[split][0])
        np.testing.assert_array_equal(ds.labels, expected[split][1])
        assert ds.labels.dtype == np.int32 and ds.class_names == CIFAR10_NAMES
        assert (ds.num_classes, ds.name) == (10, "cifar10")
    small = data.load("cifar10", "test", root=tmp_path, image_size=16)
    assert small.images.shape == (6, 16, 16, 3)


def test_cifar100_uses_the_fine_labels(server, monkeypatch, tmp_path):
    archive, expected = cifar100_archive()
    serve_dataset(monkeypatch, server, "cifar100", {"cifar-100-binary.tar.gz": archive},
                  {"train": 8, "test": 5})
    ds = data.load("cifar100", "test", root=tmp_path)
    np.testing.assert_array_equal(ds.images, expected["test"][0])
    np.testing.assert_array_equal(ds.labels, expected["test"][1])
    assert ds.num_classes == 100 and ds.class_names[:2] == ("fine_0", "fine_1")


def test_tiny_imagenet_reads_train_folders_and_val_annotations(server, monkeypatch, tmp_path):
    archive, labels = tiny_imagenet_archive()
    serve_dataset(monkeypatch, server, "tiny_imagenet", {"tiny-imagenet-200.zip": archive},
                  {"train": 9, "validation": 5})
    train = data.load("tiny_imagenet", "train", root=tmp_path)
    val = data.load("tiny_imagenet", "validation", root=tmp_path)
    assert train.images.shape == (9, 64, 64, 3) and val.images.shape == (5, 64, 64, 3)
    np.testing.assert_array_equal(train.labels, labels["train"])
    np.testing.assert_array_equal(val.labels, labels["validation"])
    assert train.class_names == ("goldfish", "Egyptian cat", "cliff")  # sorted wnids
    colours = np.array([(30, 230, 30), (230, 30, 30), (30, 30, 230)])
    means = val.images.mean((1, 2))
    assert np.abs(means - colours[val.labels]).max() < 8  # JPEG is lossy
    assert np.all(np.abs(train.images[0].astype(int) - 128) <= 2)  # the grayscale one


def test_pets_uses_official_lists_and_centre_crops(server, monkeypatch, tmp_path):
    images, annotations, labels = pets_archives()
    serve_dataset(monkeypatch, server, "oxford_pets",
                  {"images.tar.gz": images, "annotations.tar.gz": annotations},
                  {"train": 9, "test": 3})
    train = data.load("oxford_pets", "train", root=tmp_path, image_size=24)
    test = data.load("oxford_pets", "test", root=tmp_path, image_size=24)
    assert train.images.shape == (9, 24, 24, 3) and test.images.shape == (3, 24, 24, 3)
    np.testing.assert_array_equal(train.labels, labels["train"])
    np.testing.assert_array_equal(test.labels, labels["test"])
    assert train.class_names == PETS_BREEDS and train.num_classes == 3
    np.testing.assert_allclose(test.images.mean((1, 2, 3)), [0, 60, 120], atol=3)
    assert (tmp_path / "oxford_pets" / "test-24px.npz").exists()


# --- damaged archives fail loudly -------------------------------------------------------------


def _load_served(monkeypatch, server, tmp_path, name, archives, split_sizes):
    serve_dataset(monkeypatch, server, name, archives, split_sizes)
    return data.load(name, root=tmp_path)


def test_truncated_tarball_is_a_clear_error(server, monkeypatch, tmp_path):
    archive, _ = cifar10_archive()
    with pytest.raises(ValueError, match="cifar-10-binary.tar.gz is corrupt or truncated"):
        _load_served(monkeypatch, server, tmp_path, "cifar10",
                     {"cifar-10-binary.tar.gz": archive[:len(archive) // 2]},
                     {"train": 20, "test": 6})
    assert not list((tmp_path / "cifar10").glob("*.npz"))


def test_truncated_zip_is_a_clear_error(server, monkeypatch, tmp_path):
    archive, _ = tiny_imagenet_archive()
    with pytest.raises(ValueError, match="tiny-imagenet-200.zip is corrupt or truncated"):
        _load_served(monkeypatch, server, tmp_path, "tiny_imagenet",
                     {"tiny-imagenet-200.zip": archive[:-100]}, {"train": 9, "validation": 5})


def test_partial_cifar_record_is_a_clear_error(server, monkeypatch, tmp_path):
    archive, _ = cifar100_archive()
    files = {"cifar-100-binary/train.bin": bytes(2 * 3074 + 100),
             "cifar-100-binary/test.bin": bytes(3074),
             "cifar-100-binary/fine_label_names.txt": "\n".join(map(str, range(100))).encode()}
    with pytest.raises(ValueError, match="not a whole number of 3074-byte records"):
        _load_served(monkeypatch, server, tmp_path, "cifar100",
                     {"cifar-100-binary.tar.gz": tar_gz(files)}, {"train": 2, "test": 1})


def test_missing_images_are_a_clear_error(server, monkeypatch, tmp_path):
    """A well-formed archive with fewer images than the table expects is not a dataset."""
    archive, _ = cifar10_archive()
    with pytest.raises(ValueError, match="train split has 20 images, expected 50000"):
        _load_served(monkeypatch, server, tmp_path, "cifar10",
                     {"cifar-10-binary.tar.gz": archive}, {"train": 50_000, "test": 6})
    assert not list((tmp_path / "cifar10").glob("*.npz"))


# --- Fashion-MNIST: Debian's files, and the download route through a local server -------------

FASHION = fashion_mnist.SYSTEM_DIRS[0]


@pytest.fixture(scope="module")
def fashion_train():
    assert (FASHION / "train-images-idx3-ubyte.gz").is_file(), (
        f"Fashion-MNIST is missing from {FASHION}: `make test` installs Debian's package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist).")
    return data.load("fashion_mnist", "train")


def test_fashion_mnist_is_the_release(fashion_train):
    test = data.load("fashion_mnist", "test")
    assert fashion_train.images.shape == (60_000, 28, 28, 3)
    assert test.images.shape == (10_000, 28, 28, 3)
    np.testing.assert_array_equal(np.bincount(fashion_train.labels), [6_000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels), [1_000] * 10)
    assert fashion_train.class_names[9] == "Ankle boot" and fashion_train.num_classes == 10
    # The release's first labels and its widely quoted pixel statistics (0.2860, 0.3530).
    assert fashion_train.labels[:6].tolist() == [9, 0, 0, 3, 0, 2]
    assert test.labels[:6].tolist() == [9, 2, 1, 1, 6, 1]
    pixels = fashion_train.images[..., 0] / 255
    assert (round(pixels.mean(), 4), round(pixels.std(), 4)) == (0.2860, 0.3530)
    # Greyscale: three identical channels.
    np.testing.assert_array_equal(test.images[..., 0], test.images[..., 2])


def test_fashion_mnist_pads_to_larger_sizes_and_resizes_to_smaller(fashion_train):
    padded = data.load("fashion_mnist", "test", image_size=32)
    native = data.load("fashion_mnist", "test")
    np.testing.assert_array_equal(padded.images[:, 2:30, 2:30], native.images)
    assert not padded.images[:, :2].any() and not padded.images[:, 30:].any()
    assert data.load("fashion_mnist", "test", image_size=14).images.shape == (10_000, 14, 14, 3)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("change, message", [
    (lambda b: b"\x00\x00\x08\x01" + b[4:], "magic number 0x00000803"),
    (lambda b: b[:4] + (59_999).to_bytes(4, "big") + b[8:], r"expected \(60000, 28, 28\)"),
    (lambda b: b[:-1], "truncated: 47,040,015 bytes, expected 47,040,016"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:10], "truncated IDX header"),
])
def test_idx_parsing_rejects_damaged_files(change, message):
    good = _idx_bytes(np.zeros((60_000, 28, 28), np.uint8))
    assert fashion_mnist.parse_idx(good, (60_000, 28, 28), "x").shape == (60_000, 28, 28)
    with pytest.raises(ValueError, match=message):
        fashion_mnist.parse_idx(change(good), (60_000, 28, 28), "x")


def _serve_fashion(monkeypatch, server, gz_files: dict[str, bytes]):
    """Points the download route at ``server`` (primary 404, mirror serving ``gz_files``),
    with the MD5s of the served files, and hides Debian's copy."""
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    files = {}
    for split, pair in fashion_mnist.FILES.items():
        served = []
        for file in pair:
            name = file.remote.filename
            server.files[f"/mirror/{name}"] = gz_files[name]
            md5 = hashlib.md5(gz_files[name]).hexdigest()
            remote = Remote(name, (server.url(f"/primary/{name}"), server.url(f"/mirror/{name}")),
                            f"md5:{md5}")
            served.append(dataclasses.replace(file, remote=remote))
        files[split] = tuple(served)
    monkeypatch.setattr(fashion_mnist, "FILES", files)


def _debian_gz():
    return {f.remote.filename: (FASHION / f.remote.filename).read_bytes()
            for pair in fashion_mnist.FILES.values() for f in pair}


def test_fashion_mnist_downloads_verify_md5_then_the_payload(server, monkeypatch, tmp_path):
    gz = _debian_gz()
    _serve_fashion(monkeypatch, server, gz)
    downloaded = data.load("fashion_mnist", "test", root=tmp_path)
    monkeypatch.undo()
    np.testing.assert_array_equal(downloaded.images, data.load("fashion_mnist", "test").images)
    assert (tmp_path / "fashion_mnist" / "t10k-images-idx3-ubyte.gz").read_bytes() == gz[
        "t10k-images-idx3-ubyte.gz"]


def test_fashion_mnist_download_with_a_wrong_md5_is_deleted(server, monkeypatch, tmp_path):
    gz = _debian_gz()
    _serve_fashion(monkeypatch, server, gz)
    server.files["/mirror/t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"tampered")
    with pytest.raises(DownloadError, match="mirror/t10k-labels-idx1-ubyte.gz: Checksum mismatch"):
        data.load("fashion_mnist", "test", root=tmp_path)
    assert not list((tmp_path / "fashion_mnist").glob("t10k-labels*"))


def test_fashion_mnist_payload_checksum_catches_a_consistent_forgery(server, monkeypatch,
                                                                     tmp_path):
    # Right MD5 (the served file is pinned) and a valid IDX header, but other pixels.
    gz = _debian_gz()
    gz["t10k-images-idx3-ubyte.gz"] = gzip.compress(
        _idx_bytes(np.ones((10_000, 28, 28), np.uint8)))
    _serve_fashion(monkeypatch, server, gz)
    with pytest.raises(ChecksumError, match="decompressed payload.*expected sha256 5b4141f0"):
        data.load("fashion_mnist", "test", root=tmp_path)


def test_fashion_mnist_truncated_gzip_is_a_clear_error(server, monkeypatch, tmp_path):
    gz = _debian_gz()
    _serve_fashion(monkeypatch, server, {**gz, "t10k-images-idx3-ubyte.gz":
                                         gz["t10k-images-idx3-ubyte.gz"][:1000]})
    with pytest.raises(ValueError, match="not a complete gzip file"):
        data.load("fashion_mnist", "test", root=tmp_path)
