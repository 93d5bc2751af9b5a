"""Training throughput of the course recipes on this machine, on 1 and 8 devices.

    python benchmarks/bench_train.py                          # all course recipes, 1 and 8
    python benchmarks/bench_train.py --recipes cifar10_mixer --devices 8 --batch 64

Each (recipe, device count) runs in its own subprocess, because the number of virtual CPU
devices (``--xla_force_host_platform_device_count``) is fixed when JAX starts. In each, the
real jitted train step of ``mixer_ref.train`` is timed three ways, round-robin so that load
from other processes hits all alike (medians over rounds):

* ``pipeline``: the loop as ``fit`` runs it: gather the batch on the host
  (``pipeline.global_batch``), send it to the devices, augment on device, update;
* ``on-device``: the same step, augmentation included, on a batch already on the devices;
* ``no-aug``: a step without augmentation, on a batch already on the devices.

``pipeline`` ≈ ``on-device`` means the host input pipeline is not the bottleneck, and
``on-device`` vs ``no-aug`` is the price of on-device augmentation. MFU is the training
FLOP/s (``mixer_ref.flops``, 3 × forward) over the float32 matmul peak of the machine,
measured once up front (best of 20 2048² matmuls, ``metrics.measured_peak_flops``) and used
for every row, since a per-run measurement swings with load from other processes. The
batch is the global batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

COURSE_RECIPES = ("cifar10_mixer", "tiny_imagenet_mixer", "cifar10_resmlp")


def worker(recipe: str, batch: int, rounds: int, steps: int, peak: float) -> dict:
    import jax
    import numpy as np
    from flax import nnx

    from mixer_ref.configs import get_config
    from mixer_ref.data import pipeline
    from mixer_ref.flops import flops_per_image
    from mixer_ref.train import (
        build_model,
        distributed,
        get_recipe,
        make_optimizer,
        make_train_step,
    )
    from mixer_ref.train.loop import compute_dtype
    from mixer_ref.train.recipes import AugmentSpec

    config = dataclasses.replace(get_recipe(recipe), batch_size=batch)
    model_config = get_config(config.model.name)
    num_classes = model_config.num_classes
    data = pipeline.synthetic(4 * batch, model_config.image_size, num_classes)
    mesh = distributed.make_mesh()
    sharding = distributed.batch_sharding(mesh)
    arrays = {"images": data.images, "labels": data.labels}

    def setup(cfg):
        model = build_model(cfg, num_classes, compute_dtype(cfg.precision))
        optimizer = nnx.Optimizer(model, make_optimizer(cfg.optim, cfg.num_steps),
                                  wrt=nnx.Param)
        for obj in (model, optimizer):
            nnx.update(obj, distributed.replicate(nnx.state(obj), mesh))
        model.train()
        return model, optimizer, make_train_step(cfg, num_classes, mesh)

    def run(step_fn, model, optimizer, from_host):
        out = None
        for t in range(steps):
            indices = pipeline.global_batch_indices(len(data.labels), batch, 0, t)
            b = pipeline.global_batch(arrays, indices, sharding) if from_host else fixed
            out = step_fn(model, optimizer, b["images"], b["labels"], np.int32(t))
        jax.block_until_ready(out)

    fixed = pipeline.global_batch(arrays, np.arange(batch), sharding)
    augmented = setup(config)
    plain = setup(dataclasses.replace(config, augment=AugmentSpec()))
    variants = {
        "pipeline": lambda: run(augmented[2], *augmented[:2], from_host=True),
        "on-device": lambda: run(augmented[2], *augmented[:2], from_host=False),
        "no-aug": lambda: run(plain[2], *plain[:2], from_host=False),
    }
    for fn in variants.values():  # compile and warm up
        fn()
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    train_flops = flops_per_image(model_config, train=True)
    result = {"recipe": recipe, "model": model_config.name, "devices": jax.device_count(),
              "batch": batch, "peak_gflops": peak / 1e9}
    for name, ts in times.items():
        rate = steps * batch / statistics.median(ts)
        result[name] = {"images_per_sec": rate, "mfu": rate * train_flops / peak}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(COURSE_RECIPES))
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--peak", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.batch, args.rounds, args.steps, args.peak)
        print("RESULT " + json.dumps(result))
        return

    os.environ["JAX_PLATFORMS"] = "cpu"
    from mixer_ref.train.metrics import measured_peak_flops

    peak = measured_peak_flops(2048, repeats=20)
    print(f"{'recipe':<20} {'model':<16} {'dev':>3} {'batch':>5}  "
          f"{'pipeline img/s (MFU)':>21} {'on-device img/s (MFU)':>22} "
          f"{'no-aug img/s (MFU)':>19}")
    for recipe in args.recipes:
        for devices in args.devices:
            env = dict(os.environ, JAX_PLATFORMS="cpu",
                       XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
            out = subprocess.run(
                [sys.executable, __file__, "--worker", recipe, "--batch", str(args.batch),
                 "--rounds", str(args.rounds), "--steps", str(args.steps),
                 "--peak", str(peak)],
                env=env, capture_output=True, text=True, check=True).stdout
            r = json.loads(out.split("RESULT ", 1)[1])
            cells = [f"{r[v]['images_per_sec']:8.1f} ({100 * r[v]['mfu']:4.1f}%)"
                     for v in ("pipeline", "on-device", "no-aug")]
            print(f"{recipe:<20} {r['model']:<16} {devices:>3} {args.batch:>5}  "
                  f"{cells[0]:>21} {cells[1]:>22} {cells[2]:>19}", flush=True)
    print(f"MFU relative to the measured float32 matmul peak, {peak / 1e9:.0f} GFLOP/s.")


if __name__ == "__main__":
    main()
