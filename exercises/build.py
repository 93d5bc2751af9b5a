"""Builds the exercises with otter assign: student notebooks and autograder zips.

    python exercises/build.py                 # every exercise, in place (make exercises)
    python exercises/build.py --out DIR 01    # exercise 01 into DIR/01_.../{student,autograder}

Each exercise is a folder ``exercises/NN_name/`` holding the master notebook
``NN_name.ipynb`` (solutions, public and hidden tests) and ``mutants/``. otter assign runs
in a staging copy next to ``grading_support.py``, so the helper module has one source and is
copied into both outputs. ``student/`` is committed; ``autograder/`` (with the zip that
``grade.py`` uses) is a build output. The build is reproducible: run twice on the same
masters it writes the same bytes (cell ids are numbered, not random).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "grading_support.py"


def exercises(selected: list[str] | None = None) -> list[Path]:
    """The exercise folders, optionally only those whose name starts with one of ``selected``."""
    found = sorted(p for p in HERE.glob("[0-9][0-9]_*") if (p / f"{p.name}.ipynb").exists())
    if selected:
        found = [p for p in found if any(p.name.startswith(s) for s in selected)]
    return found


def build(exercise: Path, out: Path, *, run_tests: bool = True) -> Path:
    """Runs otter assign on ``exercise``; writes ``out/student`` and ``out/autograder``."""
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / exercise.name
        stage.mkdir()
        master = stage / f"{exercise.name}.ipynb"
        shutil.copy(exercise / master.name, master)
        shutil.copy(SUPPORT, stage / SUPPORT.name)
        command = [sys.executable, "-m", "otter", "assign", master.name, "dist"]
        if not run_tests:
            command.append("--no-run-tests")
        done = subprocess.run(command, cwd=stage, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"otter assign failed for {exercise.name}:\n{done.stdout}\n"
                               f"{done.stderr}")
        for part in ("student", "autograder"):
            for notebook in (stage / "dist" / part).glob("*.ipynb"):
                stable_cell_ids(notebook)
        out.mkdir(parents=True, exist_ok=True)
        for part in ("student", "autograder"):
            shutil.rmtree(out / part, ignore_errors=True)
            shutil.copytree(stage / "dist" / part, out / part)
    return out


def stable_cell_ids(path: Path) -> None:
    """Numbers the cells ``cell-00``, ``cell-01``, ...: otter assign gives the cells it adds
    random ids, so without this every build would rewrite the committed notebooks."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
    nbformat.write(nb, path)


def autograder_zip(folder: Path) -> Path:
    """The autograder zip inside ``folder/autograder``."""
    zips = sorted((folder / "autograder").glob("*.zip"))
    if not zips:
        raise FileNotFoundError(f"no autograder zip in {folder / 'autograder'}; run "
                                "`make exercises` first")
    return zips[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*",
                        help="exercise name prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--out", type=Path, help="write into OUT/NN_name instead of in place")
    parser.add_argument("--no-run-tests", action="store_true",
                        help="skip otter's check that the solutions pass their tests")
    args = parser.parse_args(argv)
    for exercise in exercises(args.names):
        out = args.out / exercise.name if args.out else exercise
        build(exercise, out, run_tests=not args.no_run_tests)
        print(f"{exercise.name}: {out / 'student'}, {autograder_zip(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
