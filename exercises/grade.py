"""Grades exercise notebooks with `otter run` (no Docker), one subprocess per submission.

    python exercises/grade.py my_notebook.ipynb            # one notebook, with feedback
    python exercises/grade.py submissions/ --timeout 300   # a class: table + submissions/grades.csv

Each notebook is matched to its exercise by the assignment name that otter stores in the
notebook's metadata (``otter.assignment_name``), or else by its file name (``01_...``), and
graded against ``exercises/<name>/autograder/*.zip`` (built by `make exercises`). A
notebook that crashes, runs past the time limit, or is not a notebook at all gets 0 points
and a status saying why; the batch goes on. Grading runs in the current Python environment,
which must have ``mixer_ref`` installed (the repository's .venv has).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Grade:
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


def question_points(zip_path: Path) -> dict[str, float]:
    """Each question's points, read from the autograder's tests (for zero grades)."""
    import zipfile

    points = {}
    with zipfile.ZipFile(zip_path) as z:
        for info in sorted(z.namelist()):
            if info.startswith("tests/") and info.endswith(".py"):
                env: dict = {}
                exec(compile(z.read(info).decode(), info, "exec"), env)
                points[env["name"]] = float(env.get("points") or 0)
    return points


def grade_one(path: Path, root: Path, names: list[str], timeout: float) -> Grade:
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
    grade.possible = question_points(zip_path)
    grade.scores = dict.fromkeys(grade.possible, 0.0)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        # otter checks the assignment name in the notebook's metadata; give it a clean copy
        # under the exercise's own name so file names like "alice.ipynb" work too.
        submission = Path(tmp) / f"{name}.ipynb"
        submission.write_bytes(path.read_bytes())
        command = [sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", tmp,
                   "--no-logo", str(submission)]
        proc = subprocess.Popen(command, cwd=tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # otter, its kernel and anything they started
            proc.communicate()
            grade.status = f"timed out after {timeout:g} s: graded 0"
            grade.seconds = time.monotonic() - start
            return grade
        grade.seconds = time.monotonic() - start
        results = Path(tmp) / "results.json"
        if proc.returncode or not results.exists():
            last = output.strip().splitlines()[-1:] or ["no output"]
            grade.status = f"grader error: {last[0][:200]}"
            return grade
        data = json.loads(results.read_text())
    notes = []
    for test in data.get("tests", []):
        question = test["name"].split(" - ")[0]
        grade.scores[question] = grade.scores.get(question, 0.0) + float(test.get("score", 0))
        if float(test.get("score", 0)) < float(test.get("max_score", 0)):
            notes.append(f"{test['name']}:\n{test.get('output', '').strip()}")
    grade.feedback = "\n\n".join(notes)
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
                        help="where to write the grades (default: FOLDER/grades.csv for one "
                        "folder, else ./grades.csv)")
    parser.add_argument("--exercises", type=Path, default=HERE,
                        help="folder holding NN_name/autograder/*.zip (default: this folder)")
    parser.add_argument("--feedback", action="store_true",
                        help="print the failing tests' messages (default for one notebook)")
    args = parser.parse_args(argv)

    paths = collect(args.submissions)
    if not paths:
        parser.error("no .ipynb files found")
    names = exercise_names(args.exercises)
    with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        grades = list(pool.map(lambda p: grade_one(p, args.exercises, names, args.timeout),
                               paths))
    print_table(grades)
    if args.feedback or len(paths) == 1:
        for g in grades:
            if g.feedback:
                print(f"\n=== {g.path.name}: failing tests\n{g.feedback}")
    out = args.csv
    if out is None:
        single_dir = len(args.submissions) == 1 and args.submissions[0].is_dir()
        out = args.submissions[0] / "grades.csv" if single_dir else Path("grades.csv")
    write_csv(grades, out)
    print(f"\ngrades written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
