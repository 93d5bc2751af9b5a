"""Input-pipeline throughput alone: images/s per process, reading shards as training does.

    python -m cluster.bench_pipeline [--dir DIR] [--processes 2] [--threads 8] \\
        [--batch 1024] [--steps 10] [--image_size 224]

Without ``--dir`` (or with an empty one) it first writes synthetic shards: 2,048 JPEGs of
500×375 pixels (ImageNet's typical size) at quality 90. Then ``--processes`` processes each
play one host of a ``--processes``-host job: for every step they read and decode their
share (``pipeline.process_slice``) of the global batch ``pipeline.global_batch_indices``
picks, exactly as ``mixer_ref.train`` does, and report images/s. No accelerator is used.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mixer_ref.data import pipeline, shards

SOURCE_SIZE = (500, 375)


def write_bench_shards(root: Path, num_images: int, seed: int = 0) -> None:
    """Smooth random colour fields with mild noise: JPEGs of a realistic size."""
    rng = np.random.default_rng(seed)
    width, height = SOURCE_SIZE

    def images():
        for _ in range(num_images):
            coarse = rng.uniform(0, 255, (6, 8, 3))
            field = np.kron(coarse, np.ones((-(-height // 6), -(-width // 8), 1)))
            noisy = field[:height, :width] + rng.normal(0, 12, (height, width, 3))
            yield shards.encode_jpeg(np.clip(noisy, 0, 255).astype(np.uint8), quality=90)

    labels = rng.integers(0, 10, num_images)
    shards.write_split(root, "train", images(), labels, [str(i) for i in range(10)],
                       num_shards=8)


def worker(root: str, index: int, count: int, batch: int, steps: int, image_size: int,
           threads: int, results) -> None:
    data = shards.load_shards(root, "train", image_size, threads)
    data.images[pipeline.process_slice(np.arange(count * 2), index, count)]  # warm up
    start = time.perf_counter()
    for step in range(steps):
        indices = pipeline.global_batch_indices(len(data), batch, 0, step)
        rows = data.images[pipeline.process_slice(indices, index, count)]
        assert rows.shape[1:] == (image_size, image_size, 3)
    results.put((index, steps * batch // count / (time.perf_counter() - start)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.bench_pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="shard directory (default: a temporary one)")
    parser.add_argument("--num_images", type=int, default=2048)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="decoding threads per process")
    parser.add_argument("--batch", type=int, default=512, help="global batch")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        if not (root / shards.INFO_FILE).exists():
            print(f"Writing {args.num_images} synthetic {SOURCE_SIZE[0]}×{SOURCE_SIZE[1]} "
                  f"JPEGs to {root} ...", flush=True)
            write_bench_shards(root, args.num_images)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        processes = [context.Process(target=worker, args=(
            str(root), i, args.processes, args.batch, args.steps, args.image_size,
            args.threads, results)) for i in range(args.processes)]
        for p in processes:
            p.start()
        rates = dict(results.get() for _ in processes)
        for p in processes:
            p.join()
    for i in sorted(rates):
        print(f"process {i}/{args.processes}: {rates[i]:,.0f} images/s "
              f"(decoded to {args.image_size}×{args.image_size})")
    print(f"total: {sum(rates.values()):,.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
