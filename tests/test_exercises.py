"""The graded exercises in exercises/ can fail, fail for the right reasons, and cannot be gamed.

For every exercise NN_name:
* the committed student folder is byte for byte what `make exercises` makes of the master
  today (so it never drifts, and a rebuild changes nothing);
* graded as a submission (exercises/runner.py: the notebook in a sandbox, the tests here),
  the solutions get full marks, every committed *variant* (a correct answer written another
  way) gets full marks, and every committed *mutant* (exercises/NN_name/mutants/qK_*.py, at
  least three per question) loses points on its question;
* every cheat in exercises/adversarial/ scores 0, shows no test source in its feedback, and
  an untouched notebook graded after all of them in the same batch still scores 0.

Each exercise is one test class, so `pytest -n 2 --dist loadscope` grades two at a time.
The grader's own behaviour (sandbox, partial credit, time and memory limits, CSV) is
tested once, on exercise 01.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "exercises"))

from build import build, exercises  # noqa: E402  (exercises/build.py)

MIN_MUTANTS_PER_QUESTION = 3
ADVERSARIAL = ROOT / "exercises" / "adversarial"


def grade(submissions: Path, exercises_dir: Path, timeout: float, jobs: int = 1,
          cwd: Path | None = None) -> dict[str, dict]:
    """Runs exercises/grade.py on a folder; returns its CSV rows by file name."""
    out = submissions / "grades.csv"
    subprocess.run([sys.executable, str(ROOT / "exercises" / "grade.py"), str(submissions),
                    "--exercises", str(exercises_dir), "--timeout", str(timeout),
                    "--jobs", str(jobs), "--csv", str(out)],
                   check=True, capture_output=True, text=True, cwd=cwd)
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

    @pytest.fixture(scope="class")
    @classmethod
    def graded(cls, built) -> dict:
        """The solutions, variants, mutants and cheats, graded as submissions."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.exercises_support.mutation",
             str(built / "autograder"), str(cls.EXERCISE / "mutants"), str(ADVERSARIAL)],
            cwd=ROOT, check=True, capture_output=True, text=True)
        results = json.loads(done.stdout.strip().splitlines()[-1])
        summary = {
            "mutants caught": sum(r["score"] < r["possible"]
                                  for r in results["mutants"].values()),
            "mutants": len(results["mutants"]),
            "variants at full marks": sum(r["score"] == r["possible"]
                                          for r in results["variants"].values()),
            "variants": len(results["variants"]),
            "cheats at 0": sum(r["total"] == 0 for r in results["adversarial"].values()),
            "cheats": len(results["adversarial"])}
        print(f"\n{cls.EXERCISE.name}: {summary}")
        return results

    def test_generated_test_files_are_self_contained(self, built):
        """otter runs each test function in its test file's namespace, not the notebook's:
        a name the test takes from the notebook's imports is a NameError when grading."""
        done = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated",
                               "--select", "F821", str(built / "autograder" / "tests")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout

    def test_student_files_are_what_make_exercises_writes(self, built):
        """Byte for byte: the build is reproducible, so `make exercises` changes nothing."""
        committed, fresh = self.EXERCISE / "student", built / "student"
        names = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(committed).as_posix()
                               for p in committed.rglob("*") if p.is_file()
                               and "__pycache__" not in p.parts), "run `make exercises`"
        for name in names:
            assert (committed / name).read_bytes() == (fresh / name).read_bytes(), (
                f"student/{name} differs from what the master builds; run `make exercises`")

    def test_public_tests_are_a_subset_of_the_autograder_tests(self, built):
        public = sorted((built / "student" / "tests").glob("q*.py"))
        hidden = sorted((built / "autograder" / "tests").glob("q*.py"))
        assert [p.name for p in public] == [p.name for p in hidden]
        for p, h in zip(public, hidden, strict=True):
            assert p.read_text().count("@test_case") < h.read_text().count("@test_case"), (
                f"{p.name}: every question should also have hidden tests")

    def test_student_notebook_says_how_to_get_its_tests(self, built):
        """Opened without its tests/ folder, the notebook explains how to get them, and its
        grader.check cells repeat that instead of failing with 'Test q1 not found'."""
        nb = nbformat.read(built / "student" / f"{self.EXERCISE.name}.ipynb", as_version=4)
        cell = next(c.source for c in nb.cells if "HOW_TO_GET_THE_TESTS" in c.source)
        env: dict = {"grader": None}
        here = os.getcwd()
        out = io.StringIO()
        try:
            os.chdir(built.parent)  # no tests/ here
            with contextlib.redirect_stdout(out):
                exec(cell, env)
                env["grader"].check("q1")
        finally:
            os.chdir(here)
        text = out.getvalue()
        assert text.count("git clone") == 2
        assert f"exercises/{self.EXERCISE.name}/student" in text

    @pytest.mark.slow
    def test_solutions_and_variants_get_full_marks(self, graded):
        assert graded["solution_status"] == "ok", graded["solution_feedback"]
        for question, r in graded["solution"].items():
            assert r["score"] == r["possible"], f"solution of {question}: " + "\n".join(
                graded["solution_feedback"])
        wrong = {v: r for v, r in graded["variants"].items() if r["score"] < r["possible"]}
        assert not wrong, f"correct answers that lose points: {wrong}"

    @pytest.mark.slow
    def test_every_mutant_loses_points_on_its_question(self, graded):
        for question in graded["solution"]:
            count = sum(r["question"] == question for r in graded["mutants"].values())
            assert count >= MIN_MUTANTS_PER_QUESTION, f"{question}: only {count} mutants"
        survivors = {m: r for m, r in graded["mutants"].items() if r["score"] >= r["possible"]}
        assert not survivors, f"wrong implementations that score full marks: {survivors}"

    @pytest.mark.slow
    def test_every_cheat_scores_zero_and_sees_no_test_source(self, built, graded):
        assert graded["adversarial"], "no adversarial fixtures were graded"
        test_names = {line.split("(")[0] for path in (built / "autograder" / "tests").glob("*.py")
                      for line in path.read_text().splitlines() if line.startswith("def test_")}
        assert test_names
        for name, r in graded["adversarial"].items():
            assert r["total"] == 0, f"{name} scored {r['total']}/{r['possible']}: {r}"
            feedback = "\n".join(r["feedback"])
            for marker in (*test_names, "@test_case", "call_learner("):
                assert marker not in feedback, f"{name}: test source in the feedback"
        leak = "\n".join(graded["adversarial"]["leak_hidden_tests.py"]["feedback"])
        assert "LEAK-PROBE" in leak, "the probe's own message should reach the feedback"
        exits = "\n".join(graded["adversarial"]["system_exit_in_answers.py"]["feedback"])
        assert "SystemExit: the learner gave up" in exits
        after = graded["untouched_after_adversarial"]
        assert after["total"] == 0 and after["status"] == "ok", after


for _exercise in exercises():
    _name = "TestExercise" + _exercise.name.title().replace("_", "")
    globals()[_name] = type(_name, (ExerciseChecks,), {"EXERCISE": _exercise})


# --- the grader itself, on exercise 01 ------------------------------------------------------

Q1_ANSWER = ("def num_tokens(height, width, p):\n"
             "    wrong = [f'{n} {s}' for n, s in (('height', height), ('width', width)) "
             "if s % p]\n"
             "    if wrong:\n"
             "        raise ValueError(' and '.join(wrong) + f' not a multiple of {p}')\n"
             "    return (height // p) * (width // p)\n")


@pytest.fixture(scope="module")
def built_01(tmp_path_factory) -> Path:
    exercise = exercises(["01"])[0]
    return build(exercise, tmp_path_factory.mktemp("built") / exercise.name, run_tests=False)


def _student_with(built: Path, after_q1: str | None) -> nbformat.NotebookNode:
    """The student notebook with q1 answered and ``after_q1`` as a cell after its check."""
    nb = nbformat.read(built / "student" / f"{built.name}.ipynb", as_version=4)
    check = next(i for i, c in enumerate(nb.cells) if c.source == 'grader.check("q1")')
    nb.cells[check - 1].source = Q1_ANSWER
    if after_q1 is not None:
        nb.cells.insert(check + 1, nbformat.v4.new_code_cell(after_q1))
    return nb


@pytest.mark.slow
def test_grader_keeps_partial_credit_through_crashes_exits_and_timeouts(built_01, tmp_path):
    """A broken submission gets the points of the questions graded before it broke."""
    subs = tmp_path / "submissions"
    subs.mkdir()
    (subs / "01_junk.ipynb").write_text("this is not a notebook")
    cases = {
        "crash.ipynb": "print('\\x1b[31m' + 'junk ' * 2000)\nraise SystemExit('I give up')",
        "dead_kernel.ipynb": "import os\nos._exit(1)",
        "endless.ipynb": "while True:\n    pass",
        "interrupted.ipynb": "raise KeyboardInterrupt",
    }
    for name, cell in cases.items():
        nbformat.write(_student_with(built_01, cell), subs / name)
    rows = grade(subs, built_01.parent, timeout=25, jobs=2)
    assert rows["01_junk.ipynb"]["total"] == "0"
    assert rows["01_junk.ipynb"]["status"].startswith("grader error")
    for name in ("crash.ipynb", "interrupted.ipynb"):  # a failing cell: grading goes on
        assert rows[name]["status"] == "ok" and rows[name]["q1"] == "2", rows[name]
    assert rows["dead_kernel.ipynb"]["q1"] == "2", rows["dead_kernel.ipynb"]
    assert "process ended" in rows["dead_kernel.ipynb"]["status"]
    assert rows["endless.ipynb"]["q1"] == "2", rows["endless.ipynb"]
    assert rows["endless.ipynb"]["status"].startswith("timed out")
    assert all(rows[n]["total"] == "2" for n in cases), rows


@pytest.mark.slow
def test_one_notebook_prints_feedback_and_writes_no_csv(built_01, tmp_path):
    nb = _student_with(built_01, None)
    path = tmp_path / "01_mine.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run([sys.executable, str(ROOT / "exercises" / "grade.py"), str(path),
                           "--exercises", str(built_01.parent), "--timeout", "60"],
                          cwd=tmp_path, check=True, capture_output=True, text=True)
    assert "q1=2/2" in done.stdout and "failing tests" in done.stdout
    assert "patchify" in done.stdout  # q2's public test says what was wrong
    assert not list(tmp_path.glob("*.csv")), "grade.py wrote a CSV nobody asked for"


@pytest.mark.slow
def test_sandbox_refuses_every_way_out(built_01):
    """mixer_ref, the exercises, other processes, new processes, C code and sockets are
    out of reach of a notebook's code; a memory bomb is a MemoryError."""
    from runner import Zygote, deny_list, probe

    source = (ADVERSARIAL / "escape_the_sandbox.py").read_text()
    zip_path = next((built_01 / "autograder").glob("*.zip"))
    extra = [
        "import sys\nfrom pathlib import Path\n"
        "_try('read mixer_ref', lambda: (Path(sys.prefix).parent / 'mixer_ref' / "
        "'__init__.py').read_text())\n"
        f"_try('read a master', lambda: open({str(ROOT / 'exercises' / '01_patch_embedding' / '01_patch_embedding.ipynb')!r}).read())\n"  # noqa: E501
        f"_try('read the autograder', lambda: open({str(zip_path)!r}, 'rb').read())\n"
        f"_try('list the exercises', lambda: __import__('os').listdir({str(ROOT / 'exercises')!r}))\n"  # noqa: E501
        "_try('numpy works', lambda: float(__import__('numpy').ones(3).sum()))\n"
        "_try('jax works', lambda: float(__import__('jax').numpy.ones(3).sum()))\n"
        "_try('torch works', lambda: float(__import__('torch').ones(3).sum()))\n",
        # a fresh _posixsubprocess, which Python's audit hooks do not see: the kernel says no
        "import glob, importlib.machinery, importlib.util\n"
        "def _fresh_fork_exec():\n"
        "    path = glob.glob(sys.base_prefix + '/lib/python3*/lib-dynload/_posixsubprocess*')[0]\n"
        "    loader = importlib.machinery.ExtensionFileLoader('_posixsubprocess', path)\n"
        "    module = importlib.util.module_from_spec(\n"
        "        importlib.util.spec_from_loader('_posixsubprocess', loader))\n"
        "    r, w = os.pipe()\n"
        "    return module.fork_exec([b'/bin/true'], [b'/bin/true'], True, (w,), None, None,\n"
        "                            -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None,\n"
        "                            None, None, -1, None, False)\n"
        "_try('fork_exec from a fresh _posixsubprocess', _fresh_fork_exec)\n"]
    zygote = Zygote()
    try:
        found = probe(source.split("# %%") + extra, ["attempts"], zygote,
                      deny=deny_list(zip_path), timeout=60)
    finally:
        zygote.close()
    attempts = found["attempts"]
    for library in ("numpy", "jax", "torch"):  # threads still work
        assert attempts.pop(f"{library} works") == "3.0", attempts
    allowed = {k: v for k, v in attempts.items() if not v.startswith("refused")}
    assert not allowed, f"the sandbox let these through: {allowed}"
    assert attempts["memory"] == "refused: MemoryError"
    assert attempts["mixer_ref"] == "refused: ModuleNotFoundError"


def test_export_leaves_out_solutions_and_hidden_tests(tmp_path):
    """`make public` ships the student notebooks and public tests, and nothing secret."""
    from export import export, instructor_only

    assert instructor_only("exercises/01_patch_embedding/01_patch_embedding.ipynb")
    assert instructor_only("exercises/04_resmlp/mutants/q1_buffers.py")
    assert not instructor_only("exercises/01_patch_embedding/student/01_patch_embedding.ipynb")
    assert not instructor_only("exercises/01_patch_embedding/student/tests/q1.py")
    copied = export(tmp_path / "public")
    for exercise in exercises():
        student = f"exercises/{exercise.name}/student/{exercise.name}.ipynb"
        assert student in copied
        assert f"exercises/{exercise.name}/{exercise.name}.ipynb" not in copied
    assert not [p for p in copied if "/mutants/" in p or "adversarial" in p]


def test_the_mixer_ref_switch_works_where_pytorch_is_missing():
    # Colab's TPU runtime may have no PyTorch: grader.check must still run there, with every
    # importable part of mixer_ref switched off.
    script = """
import builtins, sys
real_import = builtins.__import__
def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")
    return real_import(name, *args, **kwargs)
builtins.__import__ = no_torch
sys.path.insert(0, "exercises")
import grading_support
import mixer_ref
with grading_support.no_mixer_ref():
    try:
        mixer_ref.get_config("mixer_tiny")
    except RuntimeError as error:
        print("blocked:", error)
print("torch loaded:", "mixer_ref.torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "blocked: mixer_ref get_config(): calling mixer_ref here" in result.stdout
    assert "torch loaded: False" in result.stdout
