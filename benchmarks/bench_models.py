"""Throughput of mixer_ref (Flax NNX and PyTorch) against an official-style Linen baseline.

    python benchmarks/bench_models.py                     # mixer_b16 (batch 8), mixer_course32
    python benchmarks/bench_models.py --model mixer_b16 --batch 8
    python benchmarks/bench_models.py --model mixer_course32 --set hidden_dim=512 --batch 64
    python benchmarks/bench_models.py --compile           # also torch.compile (slow to build)

For each model it prints forward and Adam train-step images/s and their fraction of this
machine's float32 matmul peak. FLOPs per image are counted from the config
(``mixer_ref.flops``: the matmuls of stem, token mixing, channel mixing and head; a train
step counts 3× the forward). The peak is measured in the same run, between the timed calls,
as the best of three 2048×2048 matmuls (``jnp.dot`` for JAX, ``torch.mm`` for torch), and
its median is used. The baseline is ``linen_baseline.MlpMixer``, timed in the same rounds as
mixer_ref's Flax model. Images/s are medians over the rounds, and the ratio mixer_ref/baseline
is the ratio of the two JAX models' median images/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx
from linen_baseline import MlpMixer as LinenMixer

from mixer_ref import get_config
from mixer_ref.flops import flops_per_image, macs_per_image
from mixer_ref.models import build

DEFAULT_RUNS = {"mixer_b16": 8, "mixer_course32": 128}
NNX, BASELINE = "mixer_ref flax (nnx.jit)", "baseline linen (jax.jit)"
MODES = ("forward", "train")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_meters(n: int = 2048, tries: int = 3) -> dict[str, Callable[[], float]]:
    """Per backend, a function that returns the float32 matmul FLOP/s, best of ``tries``."""
    a, t = jnp.ones((n, n), jnp.float32), torch.ones(n, n)
    dot = jax.jit(jnp.dot)
    calls = {"jax": lambda: dot(a, a).block_until_ready(), "torch": lambda: torch.mm(t, t)}

    def meter(call):
        call()
        return lambda: 2 * n**3 / min(timed(call) for _ in range(tries))

    return {backend: meter(call) for backend, call in calls.items()}


def measure(fns: dict, peaks: dict[str, Callable[[], float]], repeats: int):
    """Seconds per call, and matmul peaks measured between the calls, per key of ``fns``.

    The backends take turns (the idle threads of one can spin and slow the other). Within a
    backend, every callable is called once (JAX compiles there), then all are timed
    round-robin, in reverse order every other round.
    """
    seconds = {key: [] for key in fns}
    peak = {backend: [] for backend in peaks}
    for backend, meter in peaks.items():
        keys = [key for key in fns if fns[key][0] == backend]
        for key in keys:
            fns[key][1]()
        for r in range(repeats):
            for key in keys if r % 2 == 0 else keys[::-1]:
                peak[backend].append(meter())
                seconds[key].append(timed(fns[key][1]))
    return seconds, {backend: statistics.median(p) for backend, p in peak.items()}


def loss_fn(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def nnx_callables(config, images, labels):
    """``nnx.jit`` in tree mode (``graph=False``): graph mode returns a copy of every
    parameter from each call, which costs ~10% on Mixer-B/16. The train step donates the
    model and optimizer state, as the baseline's does."""
    model = build(config, "flax")
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit(graph=False)
    def forward(model, x):
        return model(x)

    @nnx.jit(graph=False, donate_argnums=(0, 1))
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    return (lambda: forward(model, images).block_until_ready(),
            lambda: train_step(model, optimizer, images, labels).block_until_ready())


def linen_callables(config, images, labels):
    model, tx = LinenMixer(config), optax.adam(1e-3)
    state = {"params": model.init(jax.random.key(0), images)["params"]}
    state["opt"] = tx.init(state["params"])
    forward = jax.jit(lambda params, x: model.apply({"params": params}, x))

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(
            lambda p: loss_fn(model.apply({"params": p}, x), y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def train():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"],
                                                         images, labels)
        loss.block_until_ready()

    return lambda: forward(state["params"], images).block_until_ready(), train


def torch_callables(config, images, labels, compile_model: bool):
    model = build(config, "torch")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = torch.compile(model) if compile_model else model
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.array(labels)).long()

    def forward():
        with torch.inference_mode():
            return run(x)

    def train():
        loss = torch.nn.functional.cross_entropy(run(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return forward, train


def bench(config, batch: int, repeats: int, compile_model: bool, peaks):
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(batch, config.image_size, config.image_size, 3)),
                         jnp.float32)
    labels = jnp.asarray(rng.integers(0, config.num_classes, batch))
    impls = {NNX: ("jax", nnx_callables(config, images, labels)),
             "mixer_ref torch eager": ("torch", torch_callables(config, images, labels, False))}
    if compile_model:
        impls["mixer_ref torch.compile"] = ("torch", torch_callables(config, images, labels,
                                                                     True))
    if config.family == "mixer":
        impls[BASELINE] = ("jax", linen_callables(config, images, labels))
    fns = {(name, mode): (impls[name][0], impls[name][1][i])
           for i, mode in enumerate(MODES) for name in impls}
    seconds, peak = measure(fns, peaks, repeats)

    flops = {mode: flops_per_image(config, train=mode == "train") for mode in MODES}
    parts = ", ".join(f"{k} {2 * v / 1e9:.3f}" for k, v in macs_per_image(config).items())
    print(f"\n{config.name}: batch {batch}, {config.image_size}px; {repeats} rounds; "
          f"load average {os.getloadavg()[0]:.1f}\n"
          f"GFLOP/image: forward {flops['forward'] / 1e9:.3f} ({parts}), train step 3x\n"
          f"float32 matmul peak, median over rounds: jax {peak['jax'] / 1e9:.0f}, "
          f"torch {peak['torch'] / 1e9:.0f} GFLOP/s")
    print(f"{'implementation':<26}{'fwd img/s':>11}{'% peak':>8}{'train img/s':>13}{'% peak':>8}")
    for name, (backend, _) in impls.items():
        row = f"{name:<26}"
        for mode, width in (("forward", 11), ("train", 13)):
            rate = batch / statistics.median(seconds[name, mode])
            row += f"{rate:>{width}.1f}{100 * rate * flops[mode] / peak[backend]:>7.1f}%"
        print(row)
    if config.family == "mixer":
        ratio = {mode: statistics.median(seconds[BASELINE, mode])
                 / statistics.median(seconds[NNX, mode]) for mode in MODES}
        print(f"{'ratio mixer_ref/baseline':<26}{ratio['forward']:>11.2f}x{'':>7}"
              f"{ratio['train']:>13.2f}x")


def parse_overrides(config, items: list[str]) -> dict:
    """``["hidden_dim=256", ...]`` → ``{"hidden_dim": 256, ...}``, typed like the config."""
    types = {f.name: type(getattr(config, f.name)) for f in dataclasses.fields(config)}
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}.")
        overrides[key] = types.get(key, str)(value)  # get_config rejects unknown fields
    return overrides


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="registry name; default: " + ", ".join(DEFAULT_RUNS))
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config overrides, e.g. hidden_dim=256 num_blocks=4")
    parser.add_argument("--batch", type=int, help="default: 8 for mixer_b16, else 128")
    parser.add_argument("--image-size", type=int, help="shorthand for --set image_size=N")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    peaks = peak_meters()
    for name in [args.model] if args.model else list(DEFAULT_RUNS):
        overrides = parse_overrides(get_config(name), args.set)
        if args.image_size:
            overrides["image_size"] = args.image_size
        batch = args.batch or DEFAULT_RUNS.get(name, 128)
        bench(get_config(name, **overrides), batch, args.repeats, args.compile, peaks)


if __name__ == "__main__":
    main()
