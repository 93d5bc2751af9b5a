"""Exports the public course repository: everything but the exercises' instructor material.

    python exercises/export.py DEST      # make public PUBLIC=DEST

This repository is the instructors' one: it holds the exercise masters (solutions and
hidden tests), the mutants, the variants, the adversarial fixtures and the tests that use
them. Learners get the public repository, which is this one without those: the files that
git tracks (or would track), less ``INSTRUCTOR_ONLY``. The export refuses to finish if an
exported exercise file still contains a solution line or a hidden test (see ``leaks``).
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# Glob patterns matched part by part ("*" never crosses a "/"); "**" at the end: anything
# below that folder.
INSTRUCTOR_ONLY = (
    "exercises/[0-9][0-9]_*/[0-9][0-9]_*.ipynb",  # masters: solutions and hidden tests
    "exercises/[0-9][0-9]_*/mutants/**",
    "exercises/[0-9][0-9]_*/variants/**",
    "exercises/[0-9][0-9]_*/autograder/**",
    "exercises/adversarial/**",
    "tests/test_exercises.py",
    "tests/exercises_support/**",
)


def instructor_only(relative: str) -> bool:
    """True for a path (relative, POSIX) that stays in the instructors' repository."""
    parts = relative.split("/")
    for pattern in INSTRUCTOR_ONLY:
        want = pattern.split("/")
        if want[-1] == "**":
            want = want[:-1]
            if len(parts) <= len(want):
                continue
        elif len(parts) != len(want):
            continue
        if all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, want, strict=False)):
            return True
    return False


def repository_files(root: Path = ROOT) -> list[str]:
    """The files git tracks or would track (not ignored), relative to ``root``."""
    done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                           "--exclude-standard"], cwd=root, capture_output=True, check=True)
    return sorted({p for p in done.stdout.decode().split("\0")
                   if p and (root / p).is_file()})


def secrets(master: Path) -> list[str]:
    """Lines that only the instructors may see: a master's solution lines (long enough to
    be distinctive) and the names of its hidden tests."""
    found = []
    for cell in nbformat.read(master, as_version=4).cells:
        text = cell.source
        if cell.cell_type == "code" and text.lstrip().startswith("# HIDDEN"):
            found += [line.strip() for line in text.splitlines()
                      if line.strip().startswith("def test_")]
        if "# BEGIN SOLUTION" in text and "# END SOLUTION" in text:
            inside = text.split("# BEGIN SOLUTION", 1)[1].split("# END SOLUTION", 1)[0]
            found += [line.strip() for line in inside.splitlines() if len(line.strip()) >= 24]
    return sorted(set(found))


def leaks(dest: Path, root: Path = ROOT) -> list[str]:
    """``path: line`` for every secret line of an exercise found in its exported folder.

    Each exercise is searched for its own secrets: the course's notebooks teach the code
    the solutions hold, and exercise 03 gives exercise 02's LayerNorm and MLP, on purpose.
    """
    bad = []
    for master in sorted(root.glob("exercises/[0-9][0-9]_*/[0-9][0-9]_*.ipynb")):
        lines = secrets(master)
        folder = dest / master.parent.relative_to(root)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            bad += [f"{path.relative_to(dest)}: {line}" for line in lines if line in text]
    return bad


def export(dest: Path, root: Path = ROOT) -> list[str]:
    """Copies the public files into ``dest``; returns their relative paths."""
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; export into a new folder")
    copied = []
    for relative in repository_files(root):
        if instructor_only(relative):
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
        copied.append(relative)
    found = leaks(dest, root)
    if found:
        raise RuntimeError("the export contains instructor-only text:\n" + "\n".join(found))
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="an empty or new folder")
    args = parser.parse_args(argv)
    copied = export(args.dest)
    print(f"exported {len(copied)} files to {args.dest}; no solution or hidden test in them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
