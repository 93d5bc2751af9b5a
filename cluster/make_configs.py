"""Writes ``cluster/configs/**/*.json``, the papers' full-scale runs, from the tables below.

    python -m cluster.make_configs          # rewrite the files
    python -m cluster.make_configs --check  # exit 1 if a file differs (tests/test_cluster.py)

Each file is a training config (``python -m mixer_ref.train --config FILE``): ``"base"`` is
a recipe of ``mixer_ref.train.recipes`` and the other keys override it. Keys starting with
``_`` are comments that training ignores; ``cluster.dry_run`` reads them:

* ``_source``: where the numbers come from (paper section or table, official code);
* ``_dataset``: the training set, a key of ``cluster.dry_run.DATASETS`` (its image count);
* ``_epochs``: the paper's epochs, from which ``num_steps`` = epochs × images // batch;
* ``_lr_grid``: the fine-tuning learning rates the paper selects from (one run each, with
  ``--set optim.learning_rate=LR``);
* ``_paper``: the paper's TPUv3-core-days and top-1 for this run, where it gives them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"
DATA = "/mnt/data"  # where the launchers mount the shard directories on every host
CHECKPOINTS = f"{DATA}/checkpoints"  # released checkpoints (gs://mixer_models/...) copied here

IMAGENET_TRAIN = 1_281_167
IMAGENET21K_TRAIN = 14_197_122
BATCH = 4096
TABLE4 = "Mixer paper Sec. 3 and Table 4 (Adam 0.9/0.999, 10k warmup, linear decay, batch 4096"

# Table 4 rows (lr, weight decay, RandAugment magnitude, mixup α, stochastic depth), by
# (dataset, model size). Table 4 lists B and L only: S uses the B row and H the L row.
TABLE4_ROWS = {
    ("imagenet", "B"): (1e-3, 0.1, 15, 0.5, 0.1),
    ("imagenet", "L"): (1e-3, 0.1, 15, 0.5, 0.1),
    ("imagenet21k", "B"): (1e-3, 0.1, 10, 0.2, 0.1),
    ("imagenet21k", "L"): (1e-3, 0.1, 20, 0.5, 0.1),
}
ROW_OF_SIZE = {"S": "B", "B": "B", "L": "L", "H": "L"}

# The paper's pretraining cost and ImageNet top-1 after fine-tuning at 224 (Table 3; its
# ImageNet and ImageNet-21k core-days are marked as extrapolated from JFT-300M runs).
PAPER = {
    ("imagenet", "mixer_b16"): {"tpuv3_core_days": 10, "top1": 76.44,
                                "note": "Table 3; core-days extrapolated (‡)"},
    ("imagenet", "mixer_l16"): {"tpuv3_core_days": 40, "top1": 71.76,
                                "note": "Table 3; core-days extrapolated (‡)"},
    ("imagenet21k", "mixer_b16"): {"tpuv3_core_days": 150, "top1": 80.64,
                                   "note": "Table 3; core-days extrapolated (‡)"},
    ("imagenet21k", "mixer_l16"): {"tpuv3_core_days": 410, "top1": 82.89,
                                   "note": "Tables 2 and 3 (0.41k core-days)"},
}

FINETUNE = {
    # dataset: (eval split, steps, lr grid)
    "imagenet": ("validation", 20_000, [0.003, 0.01, 0.03]),
    "cifar10": ("test", 10_000, [0.003, 0.01, 0.03, 0.06]),
    "cifar100": ("test", 10_000, [0.003, 0.01, 0.03, 0.06]),
    "oxford_pets": ("test", 500, [0.003, 0.01, 0.03, 0.06]),
    "oxford_flowers102": ("test", 500, [0.003, 0.01, 0.03, 0.06]),
}
FINETUNE_SOURCE = (
    "Mixer paper Supp. C: momentum SGD, batch 512, cosine after 500 warmup steps, clipping at "
    "1, no weight decay; vit_jax configs/common.py: lr 0.03, 10k steps CIFAR, 20k ImageNet; "
    "the lr grid {0.003, 0.01, 0.03} plus 0.06 for CIFAR-10/100, Pets and Flowers. Pets and "
    "Flowers: 500 steps, from the ViT fine-tuning setup that Mixer follows; the official code "
    "has no preset for them and this count is not verified against a paper table. "
    "448 px: token-mixing expansion (Supp. C, mixer_ref.expand_token_mixing)")

RESMLP_TRAIN_SOURCE = (
    "ResMLP paper Sec. 4: LAMB lr 5e-3, weight decay 0.2, batch 2048, cosine with 5 warmup "
    "epochs, 400 epochs, label smoothing 0.1, DeiT augmentation (RandAugment m9, mixup 0.8, "
    "cutmix 1.0). Not in mixer_ref.train: random erasing 0.25 and repeated augmentation")
RESMLP_TOP1 = {"resmlp_s12": 76.6, "resmlp_s24": 79.4, "resmlp_s36": 79.7, "resmlp_b24": 81.0}


def pretrain(dataset: str, name: str) -> dict:
    size = name.split("_")[1][0].upper()
    lr, wd, magnitude, mixup, depth = TABLE4_ROWS[dataset, ROW_OF_SIZE[size]]
    images = IMAGENET_TRAIN if dataset == "imagenet" else IMAGENET21K_TRAIN
    row = f"Mixer-{ROW_OF_SIZE[size]}, {'ImageNet' if dataset == 'imagenet' else 'ImageNet-21k'}"
    source = f"{TABLE4}; row '{row}')"
    if ROW_OF_SIZE[size] != size:
        source += f"; Table 4 has no Mixer-{size} row, the Mixer-{ROW_OF_SIZE[size]} row is used"
    config = {
        "_source": source,
        "_dataset": dataset,
        "_epochs": 300,
        "base": "mixer_imagenet",
        "model": {"name": name, "stoch_depth": depth},
        "data": {"dataset": "shards", "root": f"{DATA}/{dataset}"},
        "optim": {"learning_rate": lr, "weight_decay": wd, "warmup_steps": 10_000},
        "augment": {"randaug_magnitude": magnitude, "mixup_alpha": mixup},
        "batch_size": BATCH,
        "num_steps": 300 * images // BATCH,
    }
    if dataset == "imagenet21k":  # no held-out split: evaluate by fine-tuning (Table 3)
        config["eval_every"] = 0
        config["checkpoint_every"] = 5000
    if (dataset, name) in PAPER:
        config = {"_paper": PAPER[dataset, name], **config}
    return config


def finetune(dataset: str, name: str, image_size: int) -> dict:
    split, steps, grid = FINETUNE[dataset]
    checkpoint = {"mixer_b16": "Mixer-B_16", "mixer_l16": "Mixer-L_16"}[name]
    config = {
        "_source": FINETUNE_SOURCE,
        "_dataset": dataset,
        "_lr_grid": grid,
        "base": "mixer_finetune_cifar10",
        "model": {"name": name, "image_size": image_size,
                  "pretrained": f"{CHECKPOINTS}/imagenet21k/{checkpoint}.npz"},
        "data": {"dataset": "shards", "root": f"{DATA}/{dataset}", "eval_split": split},
        "optim": {"learning_rate": 0.03},
        "num_steps": steps,
        "eval_every": min(2000, steps),
        "checkpoint_every": min(2000, steps),
    }
    paper = {("imagenet", "mixer_b16", 224): (80.64, "Table 3"),
             ("imagenet", "mixer_l16", 224): (82.89, "Table 3"),
             ("imagenet", "mixer_l16", 448): (84.15, "Table 2")}.get((dataset, name, image_size))
    if paper:
        config = {"_paper": {"top1": paper[0], "note": paper[1]}, **config}
    return config


def resmlp(name: str) -> dict:
    return {
        "_paper": {"top1": RESMLP_TOP1[name], "note": "ResMLP paper Table 3 (no distillation)"},
        "_source": RESMLP_TRAIN_SOURCE + (
            "; stochastic depth 0.05 is given for S12 only and kept here" if name != "resmlp_s12"
            else ""),
        "_dataset": "imagenet",
        "_epochs": 400,
        "base": "resmlp_imagenet",
        "model": {"name": name, "stoch_depth": 0.05},
        "data": {"dataset": "shards", "root": f"{DATA}/imagenet"},
        "batch_size": 2048,
        "num_steps": 400 * IMAGENET_TRAIN // 2048,
        "optim": {"warmup_steps": 5 * IMAGENET_TRAIN // 2048},
    }


MIXERS = ["mixer_s32", "mixer_s16", "mixer_b32", "mixer_b16", "mixer_l32", "mixer_l16",
          "mixer_h14"]


def all_configs() -> dict[str, dict]:
    """Relative path under ``cluster/configs`` → config."""
    out = {}
    for dataset, tag in (("imagenet", "in1k"), ("imagenet21k", "in21k")):
        for name in MIXERS:
            out[f"pretrain/{name}_{tag}.json"] = pretrain(dataset, name)
    for dataset in FINETUNE:
        for size in (224, 448):
            out[f"finetune/mixer_b16_in21k_{dataset}_{size}.json"] = finetune(
                dataset, "mixer_b16", size)
    for size in (224, 448):
        out[f"finetune/mixer_l16_in21k_imagenet_{size}.json"] = finetune(
            "imagenet", "mixer_l16", size)
    for name in RESMLP_TOP1:
        out[f"resmlp/{name}_in1k.json"] = resmlp(name)
    return out


def render(config: dict) -> str:
    return json.dumps(config, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files")
    args = parser.parse_args(argv)
    stale = []
    for relative, config in all_configs().items():
        path = CONFIGS / relative
        text = render(config)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(relative)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    known = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.json")}
    stale += sorted(known - set(all_configs()))
    if stale:
        print("Out of date (run python -m cluster.make_configs):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
