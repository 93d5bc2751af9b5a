"""Training metrics: the ``metrics.jsonl`` log, FLOPs and MFU, and learning-curve plots.

FLOPs per image come from ``mixer_ref.flops.flops_per_image(config, train=True)``: 2 ×
the multiply-adds of the matrix products (stem, token mixing, channel mixing, head), and
a training step ≈ 3 × the forward pass.

MFU = achieved training FLOP/s ÷ peak FLOP/s of the devices. Peaks are dense bf16 figures
from the vendors' data sheets for known accelerators (:data:`PEAK_FLOPS`); on a CPU the
peak is measured (a float32 matmul of the whole machine, so on virtual CPU devices the MFU
is relative to the machine, not to each device).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp

METRICS_FILE = "metrics.jsonl"

# Dense bf16 peak FLOP/s per chip, by substring of ``jax.Device.device_kind``.
PEAK_FLOPS = {
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5e": 197e12,
    "TPU v6 lite": 918e12,  # v6e (Trillium)
    "TPU v6e": 918e12,
    "TPU v5p": 459e12,
    "TPU v4": 275e12,
    "TPU v3": 123e12,
    "A100": 312e12,
    "H100": 989e12,
    "H200": 989e12,
}


@functools.cache
def measured_peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """The best float32 matmul FLOP/s of one jitted ``size``×``size`` product."""
    x = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops() -> float | None:
    """Peak FLOP/s of all devices of the job; None for an accelerator not in the table."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return measured_peak_flops() * jax.process_count()
    for kind, flops in PEAK_FLOPS.items():
        if kind.lower() in device.device_kind.lower():
            return flops * jax.device_count()
    return None


class MetricsWriter:
    """Appends one JSON record per line to ``workdir/metrics.jsonl`` (process 0 only)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, METRICS_FILE)
        self.enabled = jax.process_index() == 0
        if self.enabled:
            os.makedirs(workdir, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; after a resume, the latest record per (kind, step)."""
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        records = [json.loads(line) for line in f if line.strip()]
    latest = {(r["kind"], r["step"]): r for r in records}  # keeps first-seen order
    return list(latest.values())


def plot_history(workdir_or_records, axes=None):
    """Plots loss, accuracy and learning rate against the step; returns the axes.

    Takes a workdir or the list of records that ``fit`` returns.
    """
    import matplotlib.pyplot as plt

    records = (read_metrics(workdir_or_records) if isinstance(workdir_or_records, str)
               else workdir_or_records)
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.5), constrained_layout=True)
    for kind, style in (("train", "-"), ("eval", "o-")):
        rows = [r for r in records if r["kind"] == kind]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["loss"] for r in rows], style, label=kind)
        axes[1].plot(steps, [100 * r["accuracy"] for r in rows], style, label=kind)
    train = [r for r in records if r["kind"] == "train"]
    axes[2].plot([r["step"] for r in train], [r["lr"] for r in train])
    for ax, label in zip(axes, ("loss (cross-entropy, nats)", "accuracy (%)",
                                "learning rate"), strict=True):
        ax.set_xlabel("step (optimizer updates)")
        ax.set_ylabel(label)
    axes[0].legend()
    axes[1].legend()
    return axes
