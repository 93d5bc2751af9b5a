"""Is the 100% point of notebook 05's data-scale sweep under-trained? Train it again with
twice the steps.

Notebook 05 (`cpu` profile) trains the Mixer, the ResMLP and the CNN on all 60,000
Fashion-MNIST training images for 4,000 steps of 128 (8.5 epochs). This script trains the
same three models with the same recipe, data and seed for ``--steps`` (default 8,000, 17
epochs) and scores them exactly as the sweep does (``experiments.score``): accuracy on the
10,000 test images and on 10,000 training images without augmentation. Comparing its table
with the notebook's says how much accuracy the notebook's budget leaves on the table.

    .venv/bin/python benchmarks/step_doubling.py            # about 25 min on 2 idle cores
    .venv/bin/python benchmarks/step_doubling.py --steps 4000 --json /tmp/x.json

It prints one row per model and writes them as JSON (default
``benchmarks/results/step_doubling.json``, the stored run that notebook 05 cites).
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

# Notebook 05's `cpu` profile: the models, the CNN and the recipe's overrides.
MODELS = (experiments.Learner("Mixer", "mixer_tiny"), experiments.Learner("ResMLP", "resmlp_tiny"),
          experiments.cnn((16, 32, 64), stem_stride=2))
NOTEBOOK_STEPS = 4000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2 * NOTEBOOK_STEPS)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results"
                                              / "step_doubling.json"))
    args = parser.parse_args()
    config = train.apply_overrides(train.get_recipe("fashion_mnist_mixer"),
                                   [f"num_steps={args.steps}", "log_every=100"])
    train_data = load("fashion_mnist", "train", image_size=28)
    test_data = load("fashion_mnist", "test", image_size=28)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        rows = experiments.data_scale_sweep(MODELS, {len(train_data): args.steps}, train_data,
                                            test_data, config, workdir)
    print(f"{'model':<8}{'steps':>7}{'epochs':>8}{'train':>8}{'test':>8}{'wall':>8}")
    for row in rows:
        print(f"{row['model']:<8}{row['steps']:>7}{row['epochs']:>8.1f}"
              f"{row['train_accuracy']:>8.1%}{row['test_accuracy']:>8.1%}"
              f"{row['seconds']:>7.0f}s")
    record = {"script": "benchmarks/step_doubling.py", "steps": args.steps,
              "batch_size": config.batch_size, "test_images": len(test_data),
              "seconds": round(time.perf_counter() - start, 1),
              "machine": f"{platform.machine()}, {jax.devices()[0].device_kind}, "
                         f"jax {jax.__version__}", "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
