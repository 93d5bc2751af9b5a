"""Command line: ``python -m mixer_ref.train --config NAME|PATH --workdir DIR [--set k=v ...]``.

``--config`` is a recipe name (``--list`` prints them) or a JSON file; ``--set`` overrides
dotted keys, e.g. ``--set optim.learning_rate=3e-3 model.stoch_depth=0.1``. Rerunning the
same command resumes from the workdir's latest checkpoint. On SIGTERM the run checkpoints
at the next step boundary and exits with code 0.

A resume with changed hyperparameters needs ``--allow_config_change`` (the change is logged
in metrics.jsonl and the previous config kept); a changed architecture is refused. One run
at a time per workdir (``lock.json``). Exit codes: 0 done or stopped by SIGTERM, 1 the
workdir refused the run, 2 bad arguments, 3 training diverged (a non-finite loss or
parameter; the last finite checkpoint is kept).

Several processes: ``--coordinator_address HOST:PORT --num_processes N --process_id I`` on
each; without them, JAX's cluster auto-detection runs only on SLURM (``SLURM_NTASKS`` > 1)
or a multi-host TPU slice (see ``mixer_ref.train.distributed``).
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixer_ref.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="recipe name or path to a .json config")
    parser.add_argument("--workdir", help="checkpoints, config.json and metrics.jsonl go here")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                        metavar="KEY=VALUE", help="override a config field (dotted key)")
    parser.add_argument("--allow_config_change", action="store_true",
                        help="resume although hyperparameters differ from the workdir's config")
    parser.add_argument("--coordinator_address", help="HOST:PORT of process 0")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)

    from mixer_ref.train import recipes

    if args.list:
        print("\n".join(recipes.list_recipes()))
        return 0
    if not args.config or not args.workdir:
        parser.error("--config and --workdir are required")
    try:
        config = recipes.apply_overrides(recipes.load_config(args.config), args.overrides)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))

    from mixer_ref.train import distributed

    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    from mixer_ref.train.loop import TrainingDiverged, fit
    from mixer_ref.train.workdir import WorkdirError

    start = time.perf_counter()
    try:
        _, history = fit(config, args.workdir, progress=sys.stderr.isatty(),
                         allow_config_change=args.allow_config_change)
    except WorkdirError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 3
    if distributed.is_primary():
        last = {r["kind"]: r for r in history if r["kind"] in ("train", "eval")}
        summary = ", ".join(f"{kind} {k} {r[k]:.4f}" for kind, r in last.items()
                            for k in ("loss", "accuracy"))
        print(f"Done in {time.perf_counter() - start:.1f} s: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
