"""Grades an exercise's wrong implementations (mutants) in one process.

A mutant is ``exercises/NN_name/mutants/qK_what.py``: the source of question K's answer cell,
written with a plausible mistake. It replaces that cell in the solutions notebook that
otter assign wrote to ``autograder/``; the notebook then runs top to bottom (as otter run
does, errors allowed) and question K's autograder tests, public and hidden, score it.
Running all mutants of an exercise in one process avoids a kernel start per mutant.

    python -m tests.exercises_support.mutation AUTOGRADER_DIR MUTANTS_DIR   # prints JSON
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import nbformat

CHECK = re.compile(r'^grader\.check\("(q\d+)"\)\s*$')


def answer_cells(nb) -> dict[str, int]:
    """Question name -> index of its answer cell, the code cell before its check cell."""
    found = {}
    for i, cell in enumerate(nb.cells):
        m = CHECK.match(cell.source.strip()) if cell.cell_type == "code" else None
        if m:
            j = max(k for k in range(i) if nb.cells[k].cell_type == "code")
            found[m.group(1)] = j
    return found


def mutant_notebook(nb, question: str, source: str):
    """A copy of ``nb`` whose answer cell for ``question`` is ``source``."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells[answer_cells(nb)[question]].source = source
    return nb


def run_cells(nb) -> dict:
    """Executes the notebook's code cells in a fresh namespace, ignoring cell errors."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    env: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type != "code" or CHECK.match(cell.source.strip()):
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(transform(cell.source), "<cell>", "exec"), env)
            except Exception:  # noqa: BLE001 - a broken cell is part of what is graded
                pass
    return env


def score(env: dict, test_file: Path) -> dict:
    from otter.test_files import ExceptionTestFile

    tests = ExceptionTestFile.from_file(str(test_file))
    with contextlib.redirect_stdout(io.StringIO()):
        tests.run(env)
    got = sum(r.test_case.points for r in tests.test_case_results if r.passed)
    failures = [r.message.splitlines()[-1] for r in tests.test_case_results if not r.passed]
    return {"score": got, "possible": sum(tc.points for tc in tests.test_cases),
            "failures": failures}


def grade_mutants(autograder: Path, mutants: Path) -> dict[str, dict]:
    """Mutant file name -> {question, score, possible, failures}."""
    os.chdir(autograder)  # the tests import grading_support from here
    sys.path.insert(0, str(autograder))
    nb = nbformat.read(next(autograder.glob("*.ipynb")), as_version=4)
    results = {}
    for path in sorted(mutants.glob("q*.py")):
        question = path.name.split("_")[0]
        env = run_cells(mutant_notebook(nb, question, path.read_text()))
        results[path.name] = {"question": question,
                              **score(env, autograder / "tests" / f"{question}.py")}
    env = run_cells(nb)
    results["solution"] = {q: score(env, autograder / "tests" / f"{q}.py")
                           for q in answer_cells(nb)}
    return results


if __name__ == "__main__":
    print(json.dumps(grade_mutants(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())))
