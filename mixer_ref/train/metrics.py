"""Training metrics: the ``metrics.jsonl`` log, FLOPs and MFU, and learning-curve plots.

FLOPs per image come from ``mixer_ref.flops.flops_per_image(config, train=True)``: 2 ×
the multiply-adds of the matrix products (stem, token mixing, channel mixing, head), and
a training step ≈ 3 × the forward pass.

MFU = achieved training FLOP/s ÷ peak FLOP/s of the devices. Peaks are dense bf16 figures
from the vendors' data sheets for known accelerators (:data:`PEAK_FLOPS`); on a CPU the
peak is measured (a float32 matmul of the whole machine, so on virtual CPU devices the MFU
is relative to the machine, not to each device).

``metrics.jsonl`` is replaced whole at each write (``workdir.write_atomic``), so it also
works on GCS, where objects cannot be appended to. A last line cut short by an older
writer (a kill mid-append) is skipped with a warning.
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from mixer_ref.train import workdir as workdir_lib

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
    """Adds one JSON record per line to ``workdir/metrics.jsonl`` (process 0 only).

    Each :meth:`write` replaces the file whole with the old lines plus the new one.
    """

    def __init__(self, workdir: str):
        self.path = workdir_lib.path(workdir) / METRICS_FILE
        self.enabled = jax.process_index() == 0
        self.lines: list[str] = []
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self.lines = [json.dumps(r) + "\n" for r in _parse(self.path)]

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self.lines.append(json.dumps(record) + "\n")
            workdir_lib.write_atomic(self.path, "".join(self.lines))


def _parse(file) -> list[dict[str, Any]]:
    """The records of ``file``; a torn last line is skipped with a warning."""
    lines = [line for line in file.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number < len(lines):
                raise ValueError(f"{file}, line {number}, is not a JSON record: "
                                 f"{line[:80]!r}. Expected one JSON object per line; "
                                 "delete or fix that line.") from None
            warnings.warn(f"Skipping the last line of {file}, cut short by an interrupted "
                          f"write: {line[:80]!r}.", stacklevel=3)
    return records


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; after a resume, the latest record per (kind, step)
    (and event name, for ``kind == "event"`` records)."""
    file = workdir_lib.path(workdir) / METRICS_FILE
    if not file.exists():
        found = ("the folder exists, but the run logged nothing: it stopped before its "
                 "first `log_every` steps, or never started"
                 if file.parent.exists() else "there is no such folder")
        raise FileNotFoundError(f"{workdir}: expected a training workdir with {METRICS_FILE}, "
                                f"but {found}.")
    records = _parse(file)
    latest = {(r["kind"], r["step"], r.get("event")): r for r in records}  # first-seen order
    return list(latest.values())


def plot_history(workdir_or_records, axes=None):
    """Plots loss, accuracy and learning rate against the step; returns the axes.

    Takes a workdir or the list of records that ``fit`` returns.
    """
    import matplotlib.pyplot as plt

    records = (read_metrics(workdir_or_records)
               if isinstance(workdir_or_records, str | os.PathLike) else workdir_or_records)
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
