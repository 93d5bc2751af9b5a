"""Grades an exercise's wrong implementations (mutants) and cheats (adversarial notebooks).

A variant (``exercises/NN_name/variants/qK_what.py``) is a correct answer written another
way (a list for a pair, ``0.1 ** 5`` for ``1e-5``, NumPy for JAX): it must get full marks.

A mutant is ``exercises/NN_name/mutants/qK_what.py``: the source of question K's answer cell,
written with a plausible mistake. It replaces that cell in the solutions notebook that
otter assign wrote to ``autograder/``, and the notebook is graded exactly as a submission
is (``exercises/runner.py``: a sandbox per notebook, the tests in this process), sharing one
warm sandbox zygote. Question K must lose points.

An adversarial fixture is ``exercises/NN_name/adversarial/what.py``: code cells (separated by
lines ``# %%``) that try to game the grader. They are inserted after the setup cell of the
untouched *student* notebook, so a fixture has no correct answer to lean on unless it
brings one; the total must be 0, or the status must say what went wrong.

    python -m tests.exercises_support.mutation AUTOGRADER_DIR MUTANTS_DIR [ADVERSARIAL_DIR]

prints one JSON line: {"solution": {q: result}, "variants": {...}, "mutants": {...},
"adversarial": {...}}.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "exercises"))

from runner import Autograder, Zygote, grade_submission  # noqa: E402

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


def adversarial_notebook(student, source: str):
    """The student notebook with the fixture's cells after its setup cell and again before
    each check cell, so that what the fixture defines is what each question is graded on."""
    nb = nbformat.from_dict(json.loads(json.dumps(student)))
    parts = [part.strip("\n") for part in re.split(r"^# %%.*$", source, flags=re.M)]
    fixture = [p for p in parts if p.strip()]
    cells = []
    for cell in nb.cells:
        is_check = cell.cell_type == "code" and CHECK.match(cell.source.strip())
        if is_check:
            cells += [nbformat.v4.new_code_cell(text) for text in fixture]
        cells.append(cell)
        if cell.cell_type == "code" and "otter.Notebook(" in cell.source:
            cells += [nbformat.v4.new_code_cell(text) for text in fixture]
    nb.cells = cells
    return nb


def grade_all(autograder: Path, mutants: Path, adversarial: Path | None = None) -> dict:
    """Grades the solutions, every mutant and every adversarial fixture."""
    zip_path = next(autograder.glob("*.zip"))
    tests = Autograder(zip_path)
    solution_nb = nbformat.read(next(autograder.glob("*.ipynb")), as_version=4)
    student_path = autograder.parent / "student" / f"{autograder.parent.name}.ipynb"
    zygote = Zygote()
    out: dict = {"mutants": {}, "adversarial": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            def grade(nb, name):
                path = Path(tmp) / name
                nbformat.write(nb, path)
                # generous: each sandbox compiles its JAX operations afresh, and a loaded
                # machine is slow (exercise 05's solutions ran past 120 s at a load of 25)
                return grade_submission(path, tests, zygote, autograder_path=zip_path,
                                        timeout=600)

            r = grade(solution_nb, "solution.ipynb")
            out["solution"] = {q: {"score": r.scores[q], "possible": r.possible[q]}
                               for q in r.possible}
            out["solution_status"] = r.status
            out["solution_feedback"] = r.feedback
            variants = mutants.parent / "variants"
            out["variants"] = {}
            for path in sorted(variants.glob("q*.py")) if variants.is_dir() else []:
                question = path.name.split("_")[0]
                r = grade(mutant_notebook(solution_nb, question, path.read_text()),
                          f"variant_{path.stem}.ipynb")
                out["variants"][path.name] = {
                    "question": question, "score": r.scores[question],
                    "possible": r.possible[question], "status": r.status,
                    "failures": [f for f in r.feedback if f.startswith(question + " ")][:3]}
            for path in sorted(mutants.glob("q*.py")):
                question = path.name.split("_")[0]
                r = grade(mutant_notebook(solution_nb, question, path.read_text()),
                          f"mutant_{path.stem}.ipynb")
                out["mutants"][path.name] = {
                    "question": question, "score": r.scores[question],
                    "possible": r.possible[question], "status": r.status,
                    "failures": [f for f in r.feedback if f.startswith(question + " ")][:3]}
            if adversarial and adversarial.is_dir() and student_path.exists():
                student = nbformat.read(student_path, as_version=4)
                for path in sorted(adversarial.glob("*.py")):
                    r = grade(adversarial_notebook(student, path.read_text()),
                              f"adversarial_{path.stem}.ipynb")
                    out["adversarial"][path.name] = {
                        "total": sum(r.scores.values()), "possible": sum(r.possible.values()),
                        "scores": r.scores, "status": r.status, "feedback": r.feedback}
                # graded last, in the same batch: what earlier notebooks did cannot help it
                r = grade(student, "untouched.ipynb")
                out["untouched_after_adversarial"] = {
                    "total": sum(r.scores.values()), "possible": sum(r.possible.values()),
                    "status": r.status}
    finally:
        zygote.close()
    return out


if __name__ == "__main__":
    args = [Path(a).resolve() for a in sys.argv[1:]]
    print(json.dumps(grade_all(*args)))
