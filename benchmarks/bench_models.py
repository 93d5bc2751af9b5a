"""Throughput of mixer_ref (Flax NNX and PyTorch) against an official-style Linen baseline.

    python benchmarks/bench_models.py                     # mixer_b16 (batch 8), mixer_course32
    python benchmarks/bench_models.py --model mixer_b16 --batch 8
    python benchmarks/bench_models.py --model mixer_course32 --set hidden_dim=512 --batch 64
    python benchmarks/bench_models.py --compile           # also torch.compile (slow to build)

For each model it prints forward and Adam train-step images/s, the analytic FLOPs per image
(``mixer_ref.flops``) and the fraction of this machine's float32 matmul peak, which is
measured in the same run (a 2048×2048 matmul, best of several). The baseline is
``linen_baseline.MlpMixer``; the ratio mixer_ref/baseline compares the two JAX models.
All callables are warmed up (compiled) first, then timed round-robin, so that load from
other processes hits every implementation alike; each figure is a median.
The ratio pairs the two JAX models round by round.
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


def matmul_peaks(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """FLOP/s of the best of ``repeats`` n×n float32 matmuls, in JAX and in torch."""
    a = jnp.ones((n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    t = torch.ones(n, n)
    peaks = {}
    for name, fn in [("jax", lambda: dot(a, a).block_until_ready()),
                     ("torch", lambda: torch.mm(t, t))]:
        fn()
        peaks[name] = 2 * n**3 / min(timed(fn) for _ in range(repeats))
    return peaks


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def round_robin_times(fns: dict, repeats: int) -> dict[object, list[float]]:
    """Seconds per call, ``repeats`` rounds that call every function once, after one warm-up
    call each (which also compiles)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


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
    x, y = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).contiguous(), labels

    def forward():
        with torch.inference_mode():
            return run(x)

    def train():
        loss = torch.nn.functional.cross_entropy(run(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return forward, train


def bench(config, batch: int, repeats: int, compile_model: bool, peaks: dict[str, float]):
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(batch, config.image_size, config.image_size, 3)),
                         jnp.float32)
    labels = rng.integers(0, config.num_classes, batch)
    impls = {NNX: ("jax", nnx_callables(config, images, labels)),
             "mixer_ref torch eager": ("torch", torch_callables(
                 config, images, torch.from_numpy(labels), False))}
    if config.family == "mixer":
        impls[BASELINE] = ("jax", linen_callables(config, images, labels))
    if compile_model:
        impls["mixer_ref torch.compile"] = ("torch", torch_callables(
            config, images, torch.from_numpy(labels), True))
    fns = {(name, mode): fn for name, (_, pair) in impls.items()
           for mode, fn in zip(("forward", "train"), pair, strict=True)}
    times = round_robin_times(fns, repeats)

    flops = {mode: flops_per_image(config, train=mode == "train") for mode in ("forward", "train")}
    parts = ", ".join(f"{k} {2 * v / 1e9:.3f}" for k, v in macs_per_image(config).items())
    print(f"\n{config.name}: batch {batch}, {config.image_size}px, "
          f"{flops['forward'] / 1e9:.3f} GFLOP/image forward ({parts}); train step = 3x forward; "
          f"median of {repeats}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'implementation':<26}{'fwd img/s':>11}{'% peak':>8}{'train img/s':>13}{'% peak':>8}")
    rates = {}
    for name, (backend, _) in impls.items():
        row = f"{name:<26}"
        for mode, width in (("forward", 11), ("train", 13)):
            rates[name, mode] = batch / statistics.median(times[name, mode])
            mfu = rates[name, mode] * flops[mode] / peaks[backend]
            row += f"{rates[name, mode]:>{width}.1f}{100 * mfu:>7.1f}%"
        print(row)
    if config.family == "mixer":
        # Speed ratio per round (the two ran back to back), then the median over rounds.
        ratio = {mode: statistics.median(
            b / o for o, b in zip(times[NNX, mode], times[BASELINE, mode], strict=True))
            for mode in ("forward", "train")}
        print(f"{'ratio mixer_ref/baseline':<26}{ratio['forward']:>11.2f}x{'':>7}"
              f"{ratio['train']:>13.2f}x")


def parse_overrides(items: list[str]) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in items]
    bad = [item for item, pair in zip(items, pairs, strict=True) if len(pair) != 2]
    if bad:
        raise SystemExit(f"--set expects field=value, got {bad}")
    return dict(pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="registry name; default: " + ", ".join(DEFAULT_RUNS))
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config overrides, e.g. hidden_dim=256 num_blocks=4")
    parser.add_argument("--batch", type=int, help="default: 8 for mixer_b16, else 128")
    parser.add_argument("--image-size", type=int, help="shorthand for --set image_size=N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    overrides = parse_overrides(args.set)
    if args.image_size:
        overrides["image_size"] = str(args.image_size)
    peaks = matmul_peaks()
    print(f"float32 matmul peak (2048x2048, best of 10): jax {peaks['jax'] / 1e9:.1f} GFLOP/s, "
          f"torch {peaks['torch'] / 1e9:.1f} GFLOP/s; torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    for name in [args.model] if args.model else list(DEFAULT_RUNS):
        base = get_config(name)
        fields = {f.name: type(getattr(base, f.name)) for f in dataclasses.fields(base)}
        typed = {k: fields.get(k, str)(v) for k, v in overrides.items()}
        batch = args.batch or DEFAULT_RUNS.get(name, 128)
        bench(get_config(name, **typed), batch, args.repeats, args.compile, peaks)


if __name__ == "__main__":
    main()
