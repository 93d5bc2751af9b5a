"""Runs inside the emulated Colab environment (see emulate.py): executes the notebooks there.

Uses only what Colab's image has (nbclient, nbformat, the ipykernel of this interpreter).
Writes a JSON report to --out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

# What Colab's kernel has done before the first cell runs: imported numpy and pandas, and
# google.colab, which code detects Colab by (jax imports google.colab.output if it is there).
KERNEL_START = """\
import sys, types
import numpy, pandas
colab = sys.modules["google.colab"] = types.ModuleType("google.colab")
colab.output = sys.modules["google.colab.output"] = types.ModuleType("google.colab.output")
"""
TORCH_RE = re.compile(r"\btorch\b")
WATCHED = ("numpy", "pandas", "scipy", "scikit-learn", "pillow", "jax", "jaxlib", "libtpu",
           "flax", "optax", "orbax-checkpoint", "chex", "ml-dtypes", "tensorstore", "einops",
           "safetensors", "tqdm", "otter-grader", "mixer-ref", "torch")


def versions() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name in WATCHED:
            found[name] = dist.version
    return dict(sorted(found.items()))


def local_setup(source: str, pip_url: str, root: Path) -> str:
    """The setup cell with its `%pip install` pointed at the checkout `root`."""
    if f"git+{pip_url}" not in source or "mixer_ref_setup.setup(" not in source:
        raise ValueError("the first code cell is not the setup cell that `make sync-links` "
                         f"writes (installing git+{pip_url}, then calling "
                         f"mixer_ref_setup.setup):\n{source}")
    return source.replace(f"git+{pip_url}", root.as_uri())


def without_torch(cells: list) -> tuple[list, int]:
    """Cells minus PyTorch: import/print lines naming torch go, other cells naming it go."""
    kept, dropped = [], 0
    for cell in cells:
        if not TORCH_RE.search(cell.source):
            kept.append(cell)
            continue
        lines = cell.source.splitlines()
        torch_lines = [line for line in lines if TORCH_RE.search(line)]
        if all(re.match(r"(import |from \S+ import |print\()", line) for line in torch_lines):
            cell.source = "\n".join(line for line in lines if not TORCH_RE.search(line))
            kept.append(cell)
        else:
            dropped += 1
    return kept, dropped


def execute(cells: list, cwd: Path, timeout: int = 600) -> tuple[list[str], str | None]:
    """Runs KERNEL_START then `cells` in a new kernel; (text output per cell, error or None)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(KERNEL_START), *cells]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    error = None
    try:
        client.execute()
    except DeadKernelError as err:
        error = f"DeadKernelError: {err}"
    except CellExecutionError as err:
        error = str(err)[-3000:]
    texts = []
    for cell in nb.cells[1:]:
        parts = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
            elif "text/plain" in out.get("data", {}):
                parts.append(out.data["text/plain"] + "\n")
        texts.append("".join(parts))
    return texts, error


def run_like_a_learner(cells: list, cwd: Path) -> dict:
    """Runs `cells`; if the kernel dies in the setup cell (its restart), runs them again once."""
    start = time.monotonic()
    outputs, error = execute(cells, cwd)
    restarted, first = False, outputs[0]
    if error and error.startswith("DeadKernelError"):
        outputs, error = execute(cells, cwd)
        restarted = True
    return {"first_setup_output": first, "outputs": outputs, "error": error,
            "restarted": restarted, "seconds": round(time.monotonic() - start, 1)}


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def first_solution(master) -> str:
    """The master notebook's solution cell of question q1."""
    start = next(i for i, c in enumerate(master.cells)
                 if c.cell_type == "raw" and re.search(r"^name:\s*q1\s*$", c.source, re.M))
    return next(c.source for c in master.cells[start:] if c.cell_type == "code")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--notebook", type=Path, required=True)
    parser.add_argument("--exercise", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    from tools.sync_repo_links import pip_url

    url, cwd = pip_url(args.root), Path.cwd()
    report = {"python": sys.version.split()[0], "before": versions(),
              "torch": find_spec("torch") is not None}

    # 1. Notebook 01 from the top, in a kernel that has imported numpy and pandas; if the
    # setup cell restarts the kernel, all of it again, as a learner would.
    nb = nbformat.read(args.notebook, as_version=4)
    cells = code_cells(nb)
    cells[0].source = local_setup(cells[0].source, url, args.root)
    if not report["torch"]:
        cells, dropped = without_torch(cells)
        report["notebook_cells_without_torch"] = {"run": len(cells), "dropped": dropped}
    run = run_like_a_learner(cells, cwd)
    report["setup"] = {"output": run["first_setup_output"], "restarted": run["restarted"]}
    downloaded = re.search(r"downloaded ([\d.]+) MB", run["first_setup_output"])
    report["download_bytes"] = int(float(downloaded[1]) * 1e6) if downloaded else None
    report["after_setup"] = versions()
    report["jax_requires"] = metadata.requires("jax") or []
    report["notebook"] = {"error": run["error"], "cells": len(cells), "seconds": run["seconds"]}

    # 2. The exercise's student notebook, its first answer from the master's solution.
    folder = args.root / "exercises" / args.exercise
    student = nbformat.read(folder / "student" / f"{args.exercise}.ipynb", as_version=4)
    master = nbformat.read(folder / f"{args.exercise}.ipynb", as_version=4)
    cells = code_cells(student)
    cells[0].source = local_setup(cells[0].source, url, args.root)
    answer = next(i for i, c in enumerate(cells)
                  if "otter_answer_cell" in c.metadata.get("tags", []))
    cells[answer].source = first_solution(master)
    check = next(i for i, c in enumerate(cells) if 'grader.check("q1")' in c.source)
    run = run_like_a_learner(cells[:check + 1], cwd)
    report["exercise"] = {"setup_output": run["first_setup_output"],
                          "check_output": run["outputs"][check], "error": run["error"],
                          "restarted": run["restarted"], "seconds": run["seconds"]}
    report["after"] = versions()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
