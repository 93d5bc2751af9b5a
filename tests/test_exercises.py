"""The graded exercises in exercises/ can fail, and fail for the right reasons.

For every exercise NN_name:
* the committed student notebook and its public tests are what `otter assign` makes of the
  master notebook today (so they never drift);
* `otter run`, through exercises/grade.py, gives the solutions full marks and the untouched
  student notebook zero, without crashing;
* every committed wrong implementation (exercises/NN_name/mutants/qK_*.py, at least three per
  question) scores less than full marks on its question, public and hidden tests together.

Each exercise is one test class, so `pytest -n 2 --dist loadscope` grades two at a time.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "exercises"))

from build import build, exercises  # noqa: E402  (exercises/build.py)

MIN_MUTANTS_PER_QUESTION = 3


def cell_sources(path: Path) -> list[tuple[str, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def grade(submissions: Path, exercises_dir: Path, timeout: float,
          jobs: int = 1) -> dict[str, dict]:
    """Runs exercises/grade.py on a folder; returns its CSV rows by file name."""
    out = submissions / "grades.csv"
    subprocess.run([sys.executable, str(ROOT / "exercises" / "grade.py"), str(submissions),
                    "--exercises", str(exercises_dir), "--timeout", str(timeout),
                    "--jobs", str(jobs), "--csv", str(out)],
                   check=True, capture_output=True, text=True)
    with out.open() as f:
        return {row["file"]: row for row in csv.DictReader(f)}


class ExerciseChecks:
    EXERCISE: Path

    @pytest.fixture(scope="class")
    @classmethod
    def built(cls, tmp_path_factory) -> Path:
        """otter assign on the master notebook, into a temporary folder."""
        out = tmp_path_factory.mktemp("assign") / cls.EXERCISE.name
        return build(cls.EXERCISE, out, run_tests=False)

    def test_generated_test_files_are_self_contained(self, built):
        """otter runs each test function in its test file's namespace, not the notebook's:
        a name the test takes from the notebook's imports is a NameError when grading."""
        done = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated",
                               "--select", "F821", str(built / "autograder" / "tests")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout

    def test_student_files_are_generated_from_the_master(self, built):
        committed, fresh = self.EXERCISE / "student", built / "student"
        names = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(committed).as_posix()
                               for p in committed.rglob("*") if p.is_file()
                               and "__pycache__" not in p.parts), "run `make exercises`"
        for name in names:
            if name.endswith(".ipynb"):
                same = cell_sources(committed / name) == cell_sources(fresh / name)
            else:
                same = (committed / name).read_text() == (fresh / name).read_text()
            assert same, f"student/{name} differs from the master's; run `make exercises`"

    def test_public_tests_are_a_subset_of_the_autograder_tests(self, built):
        public = sorted((built / "student" / "tests").glob("q*.py"))
        hidden = sorted((built / "autograder" / "tests").glob("q*.py"))
        assert [p.name for p in public] == [p.name for p in hidden]
        for p, h in zip(public, hidden, strict=True):
            assert p.read_text().count("@test_case") < h.read_text().count("@test_case"), (
                f"{p.name}: every question should also have hidden tests")

    @pytest.mark.slow
    def test_otter_run_gives_solutions_full_marks_and_the_student_notebook_zero(
            self, built, tmp_path):
        name = self.EXERCISE.name
        shutil.copy(built / "autograder" / f"{name}.ipynb", tmp_path / "solution.ipynb")
        shutil.copy(built / "student" / f"{name}.ipynb", tmp_path / "untouched.ipynb")
        rows = grade(tmp_path, built.parent, timeout=300)
        assert rows["solution.ipynb"]["status"] == "ok", rows["solution.ipynb"]
        assert rows["solution.ipynb"]["total"] == rows["solution.ipynb"]["possible"]
        assert rows["untouched.ipynb"]["status"] == "ok", rows["untouched.ipynb"]
        assert float(rows["untouched.ipynb"]["total"]) == 0

    @pytest.mark.slow
    def test_every_mutant_loses_points_on_its_question(self, built):
        mutants = self.EXERCISE / "mutants"
        done = subprocess.run(
            [sys.executable, "-m", "tests.exercises_support.mutation",
             str(built / "autograder"), str(mutants)],
            cwd=ROOT, check=True, capture_output=True, text=True)
        results = json.loads(done.stdout.strip().splitlines()[-1])
        solution = results.pop("solution")
        for question, r in solution.items():
            assert r["score"] == r["possible"], f"solution of {question}: {r['failures']}"
        for question in solution:
            count = sum(r["question"] == question for r in results.values())
            assert count >= MIN_MUTANTS_PER_QUESTION, f"{question}: only {count} mutants"
        survivors = {m: r for m, r in results.items() if r["score"] >= r["possible"]}
        assert not survivors, f"wrong implementations that score full marks: {survivors}"


@pytest.mark.slow
def test_grader_survives_junk_crashes_and_endless_loops(tmp_path):
    """A broken submission is graded (0 or partial), not fatal to the batch."""
    exercise = exercises(["01"])[0]
    built = build(exercise, tmp_path / "built" / exercise.name, run_tests=False)
    subs = tmp_path / "submissions"
    subs.mkdir()
    (subs / "01_junk.ipynb").write_text("this is not a notebook")
    student = nbformat.read(built / "student" / f"{exercise.name}.ipynb", as_version=4)
    endless = nbformat.from_dict(json.loads(json.dumps(student)))
    endless.cells.insert(3, nbformat.v4.new_code_cell("while True:\n    pass"))
    nbformat.write(endless, subs / "endless.ipynb")
    crash = nbformat.from_dict(json.loads(json.dumps(student)))  # q1 answered, then a crash
    check = next(i for i, c in enumerate(crash.cells) if c.source == 'grader.check("q1")')
    crash.cells[check - 1].source = (
        "def num_tokens(height, width, p):\n"
        "    if height % p or width % p:\n"
        "        raise ValueError('P must divide H and W')\n"
        "    return (height // p) * (width // p)\n")
    crash.cells.insert(check + 1, nbformat.v4.new_code_cell(
        "print('\\x1b[31m' + 'junk ' * 2000)\nraise SystemExit('the learner gave up')"))
    nbformat.write(crash, subs / "crash.ipynb")
    rows = grade(subs, built.parent, timeout=60, jobs=3)
    assert rows["01_junk.ipynb"]["total"] == "0"
    assert rows["01_junk.ipynb"]["status"].startswith("grader error")
    assert rows["endless.ipynb"]["total"] == "0"
    assert rows["endless.ipynb"]["status"].startswith("timed out")
    assert rows["crash.ipynb"]["status"] == "ok"
    assert rows["crash.ipynb"]["q1"] == "2" and rows["crash.ipynb"]["total"] == "2"

for _exercise in exercises():
    _name = "TestExercise" + _exercise.name.title().replace("_", "")
    globals()[_name] = type(_name, (ExerciseChecks,), {"EXERCISE": _exercise})
