"""Converts an image-classification set into ArrayRecord shards (``mixer_ref.data.shards``).

    python -m cluster.convert_imagenet SOURCE OUT --split train [--num_shards 1024]
        [--max_size 320] [--workers 16]

SOURCE is one of

* a directory of class subfolders of images (``train/n01440764/*.JPEG``; the ImageNet
  validation set must first be sorted into class folders the same way);
* a ``.tar`` of such a directory, or a tar of one tar per class, as the published
  ``ILSVRC2012_img_train.tar`` (read twice, as a stream; nothing is unpacked);
* a ``mixer_ref.data`` name such as ``cifar10`` or ``oxford_pets`` (downloaded if needed,
  stored losslessly as PNG at its native size).

Class names are the folder (or inner tar) names, sorted; converting a second split into
the same OUT reuses the first split's class list. JPEGs are copied as they are unless
``--max_size`` asks to shrink their shorter side (re-encoded at quality 90), which makes
ImageNet-21k about a third of its size and faster to decode; other formats are re-encoded
as JPEG. Upload OUT with ``gcloud storage rsync -r OUT gs://BUCKET/PATH``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mixer_ref.data import shards

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def folder_items(root: Path) -> list[tuple[str, object]]:
    """(class name, path) of every image under ``root/<class>/``."""
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class subfolders: expected {root}/<class>/<image>.")
    return [(c.name, p) for c in classes for p in sorted(c.rglob("*")) if _is_image(p.name)]


def tar_items(path: Path) -> list[tuple[str, object]]:
    """(class name, (member, inner member or None)) of every image in the tar."""
    items = []
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            if member.name.endswith(".tar"):  # ILSVRC2012_img_train.tar: one tar per class
                with tarfile.open(fileobj=tar.extractfile(member)) as inner:
                    items += [(Path(member.name).stem, (member.name, m.name))
                              for m in inner if m.isfile() and _is_image(m.name)]
            elif _is_image(member.name) and len(Path(member.name).parts) >= 2:
                items.append((Path(member.name).parts[-2], (member.name, None)))
    return items


def tar_records(path: Path, items) -> object:
    """The bytes of ``items`` in order (a second pass over the tar)."""
    wanted = iter(items)
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for _, (name, inner_name) in wanted:
            data = tar.extractfile(members[name])
            if inner_name is None:
                yield data.read()
            else:  # consecutive items share the inner tar: read it once
                with tarfile.open(fileobj=data) as inner:
                    yield inner.extractfile(inner_name).read()


def prepare(data: bytes, max_size: int | None) -> bytes:
    """JPEG bytes as stored: unchanged if already a small enough JPEG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        small = max_size is None or min(image.size) <= max_size
        if image.format == "JPEG" and image.mode == "RGB" and small:
            return data
        image = image.convert("RGB")
        if not small:
            scale = max_size / min(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.Resampling.BICUBIC)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
        return out.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def convert(source: str, out: Path, split: str, num_shards: int, max_size: int | None,
            workers: int) -> int:
    """Writes ``split`` of ``source`` into ``out``; returns the number of images."""
    path = Path(source)
    if not path.exists():
        from mixer_ref.data import load

        data = load(source, split=split)
        shards.write_split(out, split, (encode_png(x) for x in data.images), data.labels,
                           data.class_names, num_shards)
        return len(data.labels)
    if path.is_dir():
        items = folder_items(path)
        records = (p.read_bytes() for _, p in items)
    elif tarfile.is_tarfile(path):
        items = tar_items(path)
        records = tar_records(path, items)
    else:
        raise ValueError(f"{source} is neither a directory, a tar, nor a dataset name.")
    if not items:
        raise ValueError(f"No images found in {source}.")
    names = sorted({c for c, _ in items})
    if (out / shards.INFO_FILE).exists():  # a second split: the first one's classes
        known = shards.read_info(out)["class_names"]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"Classes {unknown[:5]} of {source} are not in {out}'s class "
                             "list, which the first converted split fixed.")
        names = known
    index = {c: i for i, c in enumerate(names)}
    labels = [index[c] for c, _ in items]
    with ThreadPoolExecutor(workers) as pool:
        prepared = pool.map(lambda data: prepare(data, max_size), records)
        shards.write_split(out, split, prepared, labels, names, num_shards)
    return len(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.convert_imagenet",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="class-folder directory, tar, or mixer_ref.data name")
    parser.add_argument("out", type=Path, help="shard directory to write (local)")
    parser.add_argument("--split", required=True, help="split name, e.g. train, validation")
    parser.add_argument("--num_shards", type=int, default=64,
                        help="files to write (about 1 GB each suits a bucket)")
    parser.add_argument("--max_size", type=int, help="shrink larger shorter sides to this")
    parser.add_argument("--workers", type=int, default=16, help="re-encoding threads")
    args = parser.parse_args(argv)
    try:
        n = convert(args.source, args.out, args.split, args.num_shards, args.max_size,
                    args.workers)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f"Wrote {n:,} images of split {args.split!r} to {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
