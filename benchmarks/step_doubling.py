"""Are the large sizes of notebook 05's data-scale sweep under-trained? Train them again
with twice the steps.

Notebook 05 (`cpu` profile) trains the Mixer, the ResMLP and the CNN with the recipe
``fashion_mnist_sweep``: on all 60,000 Fashion-MNIST training images for 4,000 steps of 128
(8.5 epochs), and on a class-balanced 30% (18,000 images) for 2,000 steps. This script
trains the same three models with the same recipe, subset, data order and seed on
``--images`` images (default all) for ``--steps`` steps (default twice the recipe's) and
scores them exactly as the sweep does (``experiments.score``): accuracy on the 10,000 test
images and on (up to 10,000 of) the model's own training images. Comparing its table with
the notebook's says how much accuracy the notebook's budget leaves on the table.

    .venv/bin/python benchmarks/step_doubling.py          # 100%, 8,000 steps: ~23 min idle
    .venv/bin/python benchmarks/step_doubling.py --images 18000 --steps 4000   # 30%: ~12 min

It prints one row per model and writes them as JSON: by default
``benchmarks/results/step_doubling.json`` for the full set and
``step_doubling_<images>.json`` for a subset, the stored runs that notebook 05 cites.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax

from mixer_ref import experiments, train
from mixer_ref.data import load

# Notebook 05's `cpu` profile: its recipe and models.
RECIPE = "fashion_mnist_sweep"
MODELS = (experiments.Learner("Mixer", "mixer_tiny"), experiments.Learner("ResMLP", "resmlp_tiny"),
          experiments.cnn((16, 32, 64), stem_stride=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2 * train.get_recipe(RECIPE).num_steps)
    parser.add_argument("--images", type=int, default=None,
                        help="size of the class-balanced training subset (default: all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    config = train.apply_overrides(train.get_recipe(RECIPE), [f"num_steps={args.steps}"])
    train_data = load("fashion_mnist", "train", image_size=28)
    test_data = load("fashion_mnist", "test", image_size=28)
    images = args.images or len(train_data)
    name = "step_doubling.json" if images == len(train_data) else f"step_doubling_{images}.json"
    args.json = args.json or str(Path(__file__).parent / "results" / name)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:  # the sweep's subsets: seed 0, nested
        rows = experiments.data_scale_sweep(MODELS, {images: args.steps}, train_data,
                                            test_data, config, workdir)
    print(f"{'model':<8}{'steps':>7}{'epochs':>8}{'train':>8}{'test':>8}{'wall':>8}")
    for row in rows:
        print(f"{row['model']:<8}{row['steps']:>7}{row['epochs']:>8.1f}"
              f"{row['train_accuracy']:>8.1%}{row['test_accuracy']:>8.1%}"
              f"{row['seconds']:>7.0f}s")
    record = {"script": "benchmarks/step_doubling.py", "recipe": RECIPE, "images": images,
              "steps": args.steps,
              "batch_size": config.batch_size, "test_images": len(test_data),
              "seconds": round(time.perf_counter() - start, 1),
              "machine": f"{platform.machine()}, {jax.devices()[0].device_kind}, "
                         f"jax {jax.__version__}", "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
