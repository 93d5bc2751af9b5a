"""Grades exercise notebooks in a sandbox, one fresh process per submission.

    python exercises/grade.py my_notebook.ipynb                     # one notebook, with feedback
    python exercises/grade.py submissions/ --csv submissions/grades.csv   # a class

Each notebook is matched to its exercise by the assignment name that otter stores in the
notebook's metadata (``otter.assignment_name``), or else by its file name (``01_...``), and
graded against the tests of ``exercises/<name>/autograder/*.zip`` (built by `make exercises`)
with ``runner.py``: the notebook's code runs in a sandbox that cannot reach ``mixer_ref``,
the tests or the other submissions, and the tests and scores stay in this process. A
notebook that crashes, runs past the time limit, or is not a notebook at all gets the
points of the questions graded before that (or 0) and a status saying why; the batch goes
on. Grading needs the course environment (``mixer_ref`` installed, as in the repository's
.venv). A CSV is written only where ``--csv`` says.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import Autograder, Zygote, grade_submission  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclass
class Grade:
    """One notebook's grade: scores and points per question, status, feedback, time."""

    path: Path
    assignment: str = "?"
    scores: dict[str, float] = field(default_factory=dict)
    possible: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    feedback: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.scores.values())

    @property
    def max_total(self) -> float:
        return sum(self.possible.values())


def exercise_names(root: Path) -> list[str]:
    """The exercises under ``root``: folders NN_name with a master or an autograder."""
    return sorted(p.name for p in root.glob("[0-9][0-9]_*")
                  if (p / f"{p.name}.ipynb").exists() or (p / "autograder").is_dir())


def assignment_of(path: Path, names: list[str]) -> str | None:
    """The exercise a notebook belongs to: its otter metadata, else its file name."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        name = meta.get("otter", {}).get("assignment_name")
        if name in names:
            return name
    except (ValueError, UnicodeDecodeError, AttributeError):
        pass
    for name in names:
        if path.stem.startswith(name) or path.stem.startswith(name[:3]):
            return name
    return None


def autograder_zip(root: Path, name: str) -> Path | None:
    zips = sorted((root / name / "autograder").glob("*.zip"))
    return zips[-1] if zips else None


def grade_one(path: Path, root: Path, names: list[str], timeout: float, zygote: Zygote,
              memory_mb: int = 2048, cache: dict | None = None) -> Grade:
    """Grades one notebook against its exercise's autograder."""
    grade = Grade(path)
    name = assignment_of(path, names)
    if name is None:
        grade.status = "unknown exercise (no otter metadata, no NN_ prefix in the file name)"
        return grade
    grade.assignment = name
    zip_path = autograder_zip(root, name)
    if zip_path is None:
        grade.status = f"no autograder for {name}; run `make exercises`"
        return grade
    cache = {} if cache is None else cache
    if zip_path not in cache:
        cache[zip_path] = Autograder(zip_path)
    start = time.monotonic()
    result = grade_submission(path, cache[zip_path], zygote, autograder_path=zip_path,
                              timeout=timeout, memory_mb=memory_mb)
    grade.seconds = time.monotonic() - start
    grade.scores, grade.possible, grade.status = result.scores, result.possible, result.status
    grade.feedback = "\n".join(result.feedback)
    return grade


def collect(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
        else:
            found.append(path)
    return found


def write_csv(grades: list[Grade], out: Path) -> None:
    questions = sorted({q for g in grades for q in g.possible})
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "assignment", *questions, "total", "possible", "status"])
        for g in grades:
            writer.writerow([g.path.name, g.assignment,
                             *[f"{g.scores[q]:g}" if q in g.scores else "" for q in questions],
                             f"{g.total:g}", f"{g.max_total:g}", g.status])


def print_table(grades: list[Grade]) -> None:
    width = max([len(g.path.name) for g in grades] + [10])
    print(f"{'file':<{width}}  {'exercise':<28}{'score':>10}  per question  status")
    for g in grades:
        per = " ".join(f"{q}={g.scores[q]:g}/{g.possible[q]:g}" for q in sorted(g.possible))
        print(f"{g.path.name:<{width}}  {g.assignment:<28}{g.total:>5g}/{g.max_total:<4g}  "
              f"{per}  {g.status} ({g.seconds:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n"
                                     + __doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", nargs="+", type=Path,
                        help="notebooks, or folders whose *.ipynb are graded")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds allowed per notebook (default 300)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once")
    parser.add_argument("--csv", type=Path,
                        help="write the grades to this CSV file (default: no file)")
    parser.add_argument("--memory", type=int, default=2048,
                        help="MiB of memory each notebook may allocate (default 2048)")
    parser.add_argument("--exercises", type=Path, default=HERE,
                        help="folder holding NN_name/autograder/*.zip (default: this folder)")
    parser.add_argument("--feedback", action="store_true",
                        help="print the failing tests' messages (default for one notebook)")
    args = parser.parse_args(argv)

    paths = collect(args.submissions)
    if not paths:
        parser.error("no .ipynb files found")
    names = exercise_names(args.exercises)
    zygote, cache = Zygote(), {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as pool:
            grades = list(pool.map(
                lambda p: grade_one(p, args.exercises, names, args.timeout, zygote,
                                    args.memory, cache), paths))
    finally:
        zygote.close()
    print_table(grades)
    if args.feedback or len(paths) == 1:
        for g in grades:
            if g.feedback:
                print(f"\n=== {g.path.name}: failing tests\n{g.feedback}")
    if args.csv:
        write_csv(grades, args.csv)
        print(f"\ngrades written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
