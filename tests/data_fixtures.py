"""Helpers for the data tests: small archives in the real on-disk formats, and a local server.

The archives mirror the published layouts (CIFAR binary tarballs, the Tiny ImageNet zip, the
Oxford-IIIT Pets tarballs) with a handful of images, so the real readers run offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

from mixer_ref.data import sources
from mixer_ref.data.download import Remote

# --- archives ---------------------------------------------------------------------------------


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``files`` (name → contents), in insertion order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an HWC (RGB) or HW (grayscale) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def cifar_records(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    """CIFAR binary records: the label bytes, then the image in CHW (planar RGB) order."""
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    labels = np.stack(label_columns, axis=1).astype(np.uint8)
    return np.concatenate([labels, planar], axis=1).tobytes()


CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")


def cifar10_archive(per_batch: int = 4, test: int = 6, seed: int = 0):
    """``cifar-10-binary.tar.gz`` with 5 × ``per_batch`` train and ``test`` test records.

    Returns ``(archive bytes, {split: (images, labels)})``.
    """
    rng = np.random.default_rng(seed)
    files, splits = {}, {"train": ([], []), "test": ([], [])}
    for name, n in [*((f"data_batch_{i}.bin", per_batch) for i in range(1, 6)),
                    ("test_batch.bin", test)]:
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        files[f"cifar-10-batches-bin/{name}"] = cifar_records(images, labels)
        split = splits["test" if name == "test_batch.bin" else "train"]
        split[0].append(images)
        split[1].append(labels)
    files["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR10_NAMES) + "\n\n").encode()
    files["cifar-10-batches-bin/readme.html"] = b"<html></html>"
    expected = {s: (np.concatenate(i), np.concatenate(lab)) for s, (i, lab) in splits.items()}
    return tar_gz(files), expected


def cifar100_archive(train: int = 8, test: int = 5, seed: int = 1):
    """``cifar-100-binary.tar.gz``: records of coarse label, fine label, pixels."""
    rng = np.random.default_rng(seed)
    files, expected = {}, {}
    for split, n in [("train", train), ("test", test)]:
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine = rng.integers(0, 100, n)
        coarse = (fine + 7) % 20  # deliberately unlike the fine labels
        files[f"cifar-100-binary/{split}.bin"] = cifar_records(images, coarse, fine)
        expected[split] = (images, fine)
    files["cifar-100-binary/fine_label_names.txt"] = "\n".join(
        f"fine_{i}" for i in range(100)).encode()
    files["cifar-100-binary/coarse_label_names.txt"] = "\n".join(
        f"coarse_{i}" for i in range(20)).encode()
    return tar_gz(files), expected


# Solid colours far apart, so a class survives JPEG compression recognisably.
TINY_WNIDS = {"n02124075": ((230, 30, 30), "Egyptian cat"),
              "n01443537": ((30, 230, 30), "goldfish, Carassius auratus"),
              "n09246464": ((30, 30, 230), "cliff, drop, drop-off")}


def tiny_imagenet_archive(per_class: int = 3, val: int = 5):
    """``tiny-imagenet-200.zip`` with the three classes of :data:`TINY_WNIDS`.

    One training image is grayscale, as some real ones are. Returns ``(archive bytes,
    {split: labels})`` with labels indexing the sorted wnids.
    """
    order = sorted(TINY_WNIDS)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        root = "tiny-imagenet-200"
        zf.writestr(f"{root}/wnids.txt", "".join(f"{w}\n" for w in TINY_WNIDS))
        words = {**{w: name for w, (_, name) in TINY_WNIDS.items()}, "n00001740": "entity"}
        zf.writestr(f"{root}/words.txt", "".join(f"{w}\t{n}\n" for w, n in words.items()))
        train_labels = []
        for wnid in order:  # sorted names: the order the reader lists them in
            colour, _ = TINY_WNIDS[wnid]
            boxes = []
            for i in range(per_class):
                image = np.full((64, 64, 3), colour, np.uint8)
                if wnid == order[0] and i == 0:
                    image = np.full((64, 64), 128, np.uint8)  # grayscale JPEG
                zf.writestr(f"{root}/train/{wnid}/images/{wnid}_{i}.JPEG", jpeg(image))
                boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t63\t63\n")
                train_labels.append(order.index(wnid))
            zf.writestr(f"{root}/train/{wnid}/{wnid}_boxes.txt", "".join(boxes))
        annotations, val_labels = [], []
        for i in range(val):
            wnid = order[i % len(order)]
            zf.writestr(f"{root}/val/images/val_{i}.JPEG",
                        jpeg(np.full((64, 64, 3), TINY_WNIDS[wnid][0], np.uint8)))
            annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63\n")
            val_labels.append(order.index(wnid))
        zf.writestr(f"{root}/val/val_annotations.txt", "".join(annotations))
        zf.writestr(f"{root}/test/images/test_0.JPEG", jpeg(np.zeros((64, 64, 3), np.uint8)))
    return buffer.getvalue(), {"train": np.array(train_labels),
                               "validation": np.array(val_labels)}


PETS_BREEDS = ("Abyssinian", "american_bulldog", "Bengal")


def pets_archives():
    """``images.tar.gz`` and ``annotations.tar.gz``: 3 breeds, images of varying size.

    Returns ``(images bytes, annotations bytes, {split: labels})``.
    """
    images, lists, expected = {}, {"trainval": [], "test": []}, {"train": [], "test": []}
    for label, breed in enumerate(PETS_BREEDS):
        for i in range(1, 5):
            h, w = (40, 60) if i % 2 else (70, 50)
            images[f"images/{breed}_{i}.jpg"] = jpeg(np.full((h, w, 3), 60 * label, np.uint8))
            split = "test" if i == 4 else "trainval"
            lists[split].append(f"{breed}_{i} {label + 1} {1 + (breed[0].islower())} {i}")
            expected["test" if i == 4 else "train"].append(label)
    images["images/Abyssinian_100.mat"] = b"MATLAB 5.0"  # stray files ship in the real archive
    annotations = {"annotations/list.txt": b"#Image CLASS-ID SPECIES BREED ID\n",
                   "annotations/trainval.txt": "\n".join(lists["trainval"]).encode(),
                   "annotations/test.txt": "\n".join(lists["test"]).encode()}
    return tar_gz(images), tar_gz(annotations), {s: np.array(v) for s, v in expected.items()}


# --- a local HTTP server ----------------------------------------------------------------------


class FileServer:
    """Serves ``files`` (URL path → bytes) from 127.0.0.1 on an ephemeral port.

    Honours ``Range: bytes=N-`` (206) unless ``honour_range`` is False, answers 404 for
    unknown paths, and records each request as ``(path, Range header or None)`` in
    ``requests``. A path in ``drop_after`` announces its full length but closes the
    connection after that many bytes.
    """

    def __init__(self, files: dict[str, bytes], honour_range: bool = True):
        self.files = dict(files)
        self.honour_range = honour_range
        self.drop_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if range_header and server.honour_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                body = body[:server.drop_after.get(self.path, len(body))]
                self.wfile.write(body)
                server.bytes_sent += len(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,),
                                        daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def serve_dataset(monkeypatch, server: FileServer, name: str, archives: dict[str, bytes],
                  split_sizes: dict[str, int]) -> None:
    """Points the table entry ``name`` at ``server``: each archive at ``/primary/<file>``
    (answering 404) and ``/mirror/<file>``, with checksums of the served bytes."""
    spec = sources.REMOTE[name]
    remotes = []
    for remote in spec.archives:
        data = archives[remote.filename]
        server.files[f"/mirror/{remote.filename}"] = data
        remotes.append(Remote(remote.filename,
                              (server.url(f"/primary/{remote.filename}"),
                               server.url(f"/mirror/{remote.filename}")),
                              sha256(data), len(data)))
    monkeypatch.setitem(sources.REMOTE, name, dataclasses.replace(
        spec, archives=tuple(remotes), split_sizes=split_sizes))
