"""What a full-scale run will do, without running it.

    python -m cluster.dry_run --config cluster/configs/pretrain/mixer_b16_in1k.json \\
        [--topology v4-128] [--mfu 0.3] [--set KEY=VALUE ...]
    python -m cluster.dry_run --table [--topology v4-128] [--mfu 0.3]  # every shipped config
    python -m cluster.dry_run --table --write-book                      # refresh the book

For one config it prints the resolved config, the global, per-host and per-device batch on
the topology, the steps and epochs, the training FLOPs per image (``mixer_ref.flops``, a
training step ≈ 3 × the forward pass) and in total, and the time the run takes at the
stated MFU (model FLOPs utilisation): device-days on the topology, and TPUv3-core-days
(123 TFLOP/s bf16 per v3 chip, 2 cores) next to the paper's where it gives them. Nothing
is trained, and JAX sees no accelerator.

The cost is an estimate: FLOPs ÷ (peak × MFU). Measure the MFU of your run in the first
minutes (``metrics.jsonl`` logs it) and scale the estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

from cluster.make_configs import CONFIGS
from mixer_ref.configs import get_config
from mixer_ref.flops import flops_per_image
from mixer_ref.train import recipes

# Training-set sizes and class counts, with where they come from.
DATASETS = {
    "imagenet": (1_281_167, 1000, "ILSVRC-2012 train split"),
    "imagenet21k": (14_197_122, 21_843, "image-net.org: 14,197,122 images (fall 2011 "
                    "release); 21,843 classes, the head of the released ImageNet-21k models"),
    "cifar10": (50_000, 10, "CIFAR-10 train split"),
    "cifar100": (50_000, 100, "CIFAR-100 train split"),
    "oxford_pets": (3_680, 37, "Oxford-IIIT Pets trainval split"),
    "oxford_flowers102": (2_040, 102, "Oxford Flowers-102 train + validation splits"),
}


@dataclasses.dataclass(frozen=True)
class Topology:
    """A slice or cluster: JAX devices (TPU v3: one per core; v4, v5e, GPUs: one per chip)."""

    devices: int
    hosts: int
    device: str
    peak_flops: float  # dense bf16 per device, vendor data sheets
    cores_per_device: int = 1


TOPOLOGIES = {
    "v3-128": Topology(128, 16, "TPU v3 core", 123e12 / 2),
    "v4-128": Topology(64, 16, "TPU v4 chip", 275e12, cores_per_device=2),
    "v5e-256": Topology(256, 64, "TPU v5e chip", 197e12),
    "8xH100x4": Topology(32, 4, "H100 SXM GPU", 989e12),
}
TPUV3_CORE_FLOPS = 123e12 / 2
DEFAULT_MFU = 0.3
DAY = 86_400


def shipped_configs() -> list[Path]:
    """Pretraining, then fine-tuning, then ResMLP."""
    return [path for group in ("pretrain", "finetune", "resmlp")
            for path in sorted((CONFIGS / group).glob("*.json"))]


def plan(path: str | Path, topology: str, mfu: float, overrides: list[str] = ()) -> dict:
    """The numbers of one run on one topology (see the module docstring)."""
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must lie in (0, 1], got {mfu}.")
    if topology not in TOPOLOGIES:
        raise ValueError(f"Unknown topology {topology!r}; expected one of {list(TOPOLOGIES)}.")
    raw = json.loads(Path(path).read_text())
    config = recipes.apply_overrides(recipes.from_dict(raw), list(overrides))
    dataset = raw.get("_dataset")
    if dataset not in DATASETS:
        raise ValueError(f"{path}: _dataset must be one of {list(DATASETS)}, got {dataset!r}.")
    images, classes, _ = DATASETS[dataset]
    top = TOPOLOGIES[topology]
    batch = config.batch_size
    if batch % top.devices:
        raise ValueError(f"{path}: batch {batch} does not split over the {top.devices} "
                         f"devices of {topology}.")
    spec = config.model
    model = get_config(spec.name, num_classes=classes,
                       **({"image_size": spec.image_size} if spec.image_size else {}))
    if spec.image_size and spec.pretrained and model.family == "mixer":
        # expand_token_mixing: D_S grows with the number of tokens (Supp. C)
        k2 = (spec.image_size // get_config(spec.name).image_size) ** 2
        model = dataclasses.replace(model, tokens_mlp_dim=k2 * model.tokens_mlp_dim)
    image_flops = flops_per_image(model, train=True)
    seen = config.num_steps * batch
    total = seen * image_flops
    seconds = total / (top.devices * top.peak_flops * mfu)
    grid = raw.get("_lr_grid", [])
    return {
        "config": config, "name": Path(path).stem, "dataset": dataset, "images": images,
        "topology": topology, "devices": top.devices, "hosts": top.hosts,
        "device": top.device, "batch": batch, "per_host": batch // top.hosts,
        "per_device": batch // top.devices, "steps": config.num_steps,
        "epochs": seen / images, "paper_epochs": raw.get("_epochs"), "image_size":
        model.image_size, "flops_per_image": image_flops, "total_flops": total, "mfu": mfu,
        "hours": seconds / 3600,
        "device_days": seconds * top.devices / DAY,
        "core_days": seconds * top.devices * top.cores_per_device / DAY,
        "tpuv3_core_days": total / (TPUV3_CORE_FLOPS * mfu) / DAY,
        "lr_grid": grid, "paper": raw.get("_paper", {}), "source": raw.get("_source", ""),
    }


def describe(p: dict) -> str:
    """The dry run of one config, as text."""
    paper = p["paper"]
    lines = [
        f"# {p['name']}: {p['source']}",
        json.dumps(recipes.to_dict(p["config"]), indent=2),
        f"topology        {p['topology']}: {p['devices']} × {p['device']} on {p['hosts']} hosts",
        f"batch           global {p['batch']}, per host {p['per_host']}, "
        f"per device {p['per_device']}",
        f"steps           {p['steps']:,} = {p['epochs']:.2f} epochs of {p['images']:,} "
        f"{p['dataset']} images" + (f" (paper: {p['paper_epochs']})" if p["paper_epochs"]
                                    else ""),
        f"FLOPs           {p['flops_per_image'] / 1e9:.1f} GFLOPs per training image at "
        f"{p['image_size']} px, {p['total_flops']:.3g} in total",
        f"at MFU {p['mfu']:.0%}     {p['hours']:.1f} h on {p['topology']} = "
        f"{p['device_days']:.1f} device-days ({p['core_days']:.1f} core-days); "
        f"{p['tpuv3_core_days']:.1f} TPUv3-core-days",
    ]
    if paper:
        cost = (f"{paper['tpuv3_core_days']} TPUv3-core-days, "
                if "tpuv3_core_days" in paper else "")
        lines.append(f"paper           {cost}ImageNet top-1 {paper['top1']} % ({paper['note']})")
    if p["lr_grid"]:
        lines.append(f"lr grid         {p['lr_grid']}: one run each "
                     f"(--set optim.learning_rate=LR), {len(p['lr_grid'])}× the cost above")
    return "\n".join(lines)


def table(topology: str, mfu: float) -> str:
    """A Markdown table of every shipped config."""
    head = (f"| config | steps | batch (per device) | GFLOPs/img | {topology} hours "
            f"| TPUv3-core-days, est. | paper core-days | paper top-1 |")
    rows = [head, "|" + "---|" * 8]
    for path in shipped_configs():
        p = plan(path, topology, mfu)
        paper = p["paper"]
        grid = f" × {len(p['lr_grid'])} lr" if p["lr_grid"] else ""
        rows.append(
            f"| `{path.relative_to(CONFIGS).with_suffix('')}` | {p['steps']:,} "
            f"| {p['batch']} ({p['per_device']}) | {p['flops_per_image'] / 1e9:.1f} "
            f"| {p['hours']:.2f}{grid} | {p['tpuv3_core_days']:.1f}{grid} "
            f"| {paper.get('tpuv3_core_days', '—')} | {paper.get('top1', '—')} |")
    return "\n".join(rows)


BOOK = Path(__file__).parents[1] / "book" / "scaling_up.md"
BEGIN, END = "<!-- BEGIN dry-run table", "<!-- END dry-run table -->"


def book_table(topology: str = "v4-128", mfu: float = DEFAULT_MFU) -> str:
    return (f"{BEGIN}: python -m cluster.dry_run --table --write-book -->\n"
            f"{table(topology, mfu)}\n{END}")


def write_book(text: str, path: Path = BOOK) -> None:
    source = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(source):
        raise ValueError(f"{path} has no '{BEGIN} ... {END}' block to replace.")
    path.write_text(pattern.sub(lambda _: text, source))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.dry_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="a JSON config (cluster/configs/...)")
    what.add_argument("--table", action="store_true", help="every shipped config, Markdown")
    parser.add_argument("--topology", default="v4-128", choices=list(TOPOLOGIES))
    parser.add_argument("--mfu", type=float, default=DEFAULT_MFU,
                        help=f"model FLOPs utilisation assumed (default {DEFAULT_MFU})")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                        metavar="KEY=VALUE", help="override a config field, as in training")
    parser.add_argument("--write-book", action="store_true",
                        help=f"with --table (v4-128, default MFU): update {BOOK.name}")
    args = parser.parse_args(argv)
    try:
        if args.table and args.write_book:
            write_book(book_table())
        elif args.table:
            print(table(args.topology, args.mfu))
        else:
            print(describe(plan(args.config, args.topology, args.mfu, args.overrides)))
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
