"""The test runner's side of grading: otter-format tests against a sandboxed submission.

``grade_submission`` reads a notebook's code cells (sources only: outputs and metadata are
ignored), runs them in a fresh sandbox forked from a warm zygote (``sandbox.py``) and, at
each ``grader.check("qK")`` cell and at the end, runs question K's tests here, in the test
runner, where ``mixer_ref`` and the hidden tests live. The tests see the learner's names as
``Remote`` proxies: calling one, or reading one of its attributes, asks the sandbox, and
only data (numbers, arrays, tensors, containers) comes back. So

* nothing the notebook does can change a test, a score or another submission: the tests,
  the scores and every reference value are computed in this process, which runs no
  learner code;
* each question's score is capped at its points; a question already scored keeps its score
  when the notebook later crashes, exits, kills its process or runs out of time;
* feedback gives the failing tests' messages only, never a test's source or a traceback.

The tests are otter's exception-based test files (``autograder/tests/qK.py``), read from the
autograder zip once, then executed afresh for every submission.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wire  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_FEEDBACK = 1500


class SandboxGone(BaseException):
    """The sandbox closed its socket, sent a malformed message or ran out of time.

    A BaseException, so that a test's ``except Exception`` cannot swallow it."""


class LearnerError(Exception):
    """An exception raised by the learner's code in the sandbox, described in words."""

    def __init__(self, type_name: str, message: str, mro: list[str]):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.mro = type_name, message, list(mro)


class InputChanged(Exception):
    """The learner's function changed one of its arguments in place."""


class Zygote:
    """A warm process with the learners' libraries imported, forking one sandbox per call."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(HERE / "sandbox.py"), str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=self.log, start_new_session=True)
        theirs.close()
        self.control = ours
        self.lock = threading.Lock()
        self.control.settimeout(300)
        if self._line() != "ready":
            raise RuntimeError("the grading sandbox did not start; see its log")

    def _line(self) -> str:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.control.recv(1)
            if not chunk:
                self.log.seek(0)
                raise RuntimeError("the grading sandbox's zygote died:\n"
                                   + self.log.read().decode(errors="replace")[-3000:])
            data += chunk
        return data.decode().strip()

    def spawn(self, config: dict) -> tuple[socket.socket, int]:
        ours, theirs = socket.socketpair()
        payload = json.dumps(config).encode()
        with self.lock:
            socket.send_fds(self.control, [len(payload).to_bytes(8, "little")],
                            [theirs.fileno()])
            self.control.sendall(payload)
            theirs.close()
            pid = int(self._line())
        return ours, pid

    def close(self) -> None:
        self.control.close()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


class Channel:
    """The test runner's end of one sandbox: requests, replies, handles, a time budget.

    The budget counts only the time spent waiting for the sandbox (the notebook's cells and
    the learner's calls), not the time the tests themselves take here.
    """

    def __init__(self, sock: socket.socket, pid: int, budget: float):
        self.sock, self.pid, self.budget = sock, pid, budget
        self.alive = True

    def kill(self) -> None:
        if self.alive:
            self.alive = False
            for target in (lambda: os.killpg(self.pid, signal.SIGKILL),
                           lambda: os.kill(self.pid, signal.SIGKILL)):
                try:
                    target()
                except (ProcessLookupError, PermissionError):
                    pass
            self.sock.close()

    def receive(self) -> tuple[dict, wire.Decoder]:
        if not self.alive:
            raise SandboxGone("the sandbox is gone")
        if self.budget <= 0:
            self.kill()
            raise SandboxGone("timeout")
        start = time.monotonic()
        try:
            message, arrays = wire.receive(self.sock, deadline=start + self.budget)
            if not isinstance(message, dict):
                raise wire.WireError("a message must be an object")
        except TimeoutError:
            self.kill()
            raise SandboxGone("timeout") from None
        except (wire.WireError, OSError) as err:
            self.kill()
            raise SandboxGone(str(err)) from None
        finally:
            self.budget -= time.monotonic() - start
        return message, wire.Decoder(arrays, lambda n: Remote(self, n))

    def send(self, message: dict, values: dict | None = None) -> None:
        if not self.alive:
            raise SandboxGone("the sandbox is gone")
        encoder = wire.Encoder(_no_handles)
        payload = {k: encoder.encode(v) for k, v in (values or {}).items()}
        try:
            wire.send(self.sock, {**message, **payload}, encoder)
        except OSError as err:
            self.kill()
            raise SandboxGone(str(err)) from None

    def request(self, message: dict, values: dict | None = None):
        """Sends a request; returns (value, reply) or raises LearnerError / InputChanged."""
        self.send(message, values)
        reply, decoder = self.receive()
        if "error" in reply:
            e = reply["error"] if isinstance(reply["error"], dict) else {}
            raise LearnerError(str(e.get("type", "Exception"))[:100],
                               str(e.get("message", ""))[:wire.MAX_STRING],
                               [str(m) for m in e.get("mro", [])][:20])
        try:
            value = decoder.decode(reply.get("value"))
        except wire.WireError as err:
            self.kill()
            raise SandboxGone(str(err)) from None
        return value, reply


def _no_handles(obj):
    if isinstance(obj, Remote):
        return obj._number
    raise TypeError(f"a {type(obj).__name__} cannot be sent to the learner's code; build it "
                    "there with grading_support.in_learner_space")


class Remote:
    """A learner's object that lives in the sandbox. Calls and attribute reads go there."""

    __slots__ = ("_channel", "_number")

    def __init__(self, channel: Channel, number: int):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_number", number)

    def _learner_call(self, args: tuple, kwargs: dict, count_lines: bool = False):
        value, reply = self._channel.request(
            {"op": "call", "target": {"$handle": self._number},
             "count_lines": count_lines}, {"args": list(args), "kwargs": dict(kwargs)})
        if reply.get("mutated"):
            raise InputChanged("it changed one of its arguments in place")
        if count_lines:
            return value, int(reply.get("lines", 0)), bool(reply.get("trace_kept", False))
        return value

    def __call__(self, *args, **kwargs):
        return self._learner_call(args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value, _ = self._channel.request(
            {"op": "getattr", "target": {"$handle": self._number}, "name": name})
        return value

    def __getitem__(self, key):
        return self.__getattr__("__getitem__")(key)

    def __len__(self):
        return self.__getattr__("__len__")()

    def __iter__(self):
        return iter(self.__getattr__("__iter__")())

    def _learner_eval(self, expr: str, source: str = "", **names):
        value, _ = self._channel.request({"op": "eval", "expr": expr, "source": source},
                                         {"names": names})
        return value

    def __repr__(self):
        return f"<the learner's object #{self._number}>"


class LearnerNamespace(dict):
    """The learner's globals as the tests see them: data, or Remote proxies."""

    def __init__(self, channel: Channel):
        super().__init__()
        self.channel = channel

    def get(self, name, default=None):
        value, reply = self.channel.request({"op": "global", "name": name})
        return default if reply.get("missing") else value

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        return True


@dataclass
class Question:
    """One question of an autograder: its name, its points and its test file's source."""

    name: str
    points: float
    source: str  # the test file, kept in the runner's memory only


@dataclass
class Result:
    """What grading one notebook gives: scores and points per question, feedback, status."""

    scores: dict[str, float] = field(default_factory=dict)
    possible: dict[str, float] = field(default_factory=dict)
    feedback: list[str] = field(default_factory=list)
    status: str = "ok"


class Autograder:
    """An exercise's tests and points, read once from its autograder zip or folder."""

    def __init__(self, source: Path):
        self.files: dict[str, str] = {}
        if source.is_dir():
            for path in sorted((source / "tests").glob("q*.py")):
                self.files[path.name] = path.read_text()
            support = (source / "grading_support.py").read_text()
        else:
            with zipfile.ZipFile(source) as z:
                for name in sorted(z.namelist()):
                    if name.startswith("tests/") and name.endswith(".py"):
                        self.files[Path(name).name] = z.read(name).decode()
                support = z.read("files/grading_support.py").decode()
        self.support = support
        self.questions = []
        for name, text in sorted(self.files.items(), key=lambda kv: _qnum(kv[0])):
            test_file = _parse(text, name)
            total = sum(tc.points or 0 for tc in test_file.test_cases)
            self.questions.append(Question(test_file.name, float(total), text))

    def install_support(self) -> None:
        """Makes the tests' ``from grading_support import ...`` use the autograder's copy."""
        module = sys.modules.get("grading_support")
        if module is None or getattr(module, "__source__", None) != self.support:
            module = types.ModuleType("grading_support")
            module.__file__ = "<autograder grading_support.py>"
            module.__source__ = self.support
            exec(compile(self.support, module.__file__, "exec"), module.__dict__)
            sys.modules["grading_support"] = module


def _qnum(filename: str) -> int:
    digits = "".join(ch for ch in filename if ch.isdigit())
    return int(digits or 0)


def _parse(text: str, name: str):
    from otter.test_files import ExceptionTestFile

    return ExceptionTestFile.from_string(text, path=name)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_FEEDBACK else text[:MAX_FEEDBACK] + " …"


def run_question(question: Question, env: LearnerNamespace, result: Result) -> None:
    """Runs one question's tests (a fresh parse of its file) and records a capped score."""
    test_file = _parse(question.source, question.name)
    got = 0.0
    for tc in test_file.test_cases:
        func = tc.body.test_func
        number = str(tc.name).rsplit(" - ", 1)[-1]
        label = f"{question.name} {'hidden' if tc.hidden else 'public'} test {number}"
        try:
            kwargs = {p: (env if p == "env" else env.get(p))
                      for p in inspect.signature(func).parameters}
            func(**kwargs)
        except SandboxGone:
            result.feedback.append(f"{label}: the notebook's process ended during this test.")
            raise
        except Exception as err:  # a failing test, in words; never a traceback
            message = str(err) if isinstance(err, AssertionError) else (
                f"the test could not use what your code returned ({type(err).__name__}: "
                f"{err})")
            result.feedback.append(f"{label}: {_short(message)}")
            continue
        got += float(tc.points or 0)
    result.scores[question.name] = min(got, question.points)
    if got < question.points:
        errors, _ = env.channel.request({"op": "errors"})
        for error in errors if isinstance(errors, list) else []:
            try:
                cell, kind, message = int(error[0]) + 1, str(error[1]), str(error[2])
            except (TypeError, ValueError, IndexError):
                continue
            note = (f"{question.name}: note: code cell {cell} of your notebook raised "
                    f"{kind}: {_short(message)}")
            if note.split(": note: ", 1)[1] not in "\n".join(result.feedback):
                result.feedback.append(note)


def notebook_cells(path: Path) -> list[str]:
    """The sources of a notebook's code cells; ValueError if it is not a notebook."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
        sources = []
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            src = cell.get("source", "")
            sources.append("".join(src) if isinstance(src, list) else str(src))
        return sources
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise ValueError(f"not a notebook ({type(err).__name__})") from None


def deny_list(autograder_path: Path) -> list[str]:
    """Paths that a sandbox may not touch: the package, the exercises and their
    autograders, and the repository (all of it but its virtual environment)."""
    import importlib.util

    folder = autograder_path.resolve().parent  # .../NN_name/autograder
    deny = {str(HERE), str(folder)}
    exercises_root = folder.parent.parent  # every exercise next to this one
    if exercises_root not in (Path("/"), Path(tempfile.gettempdir()).resolve(), Path.home()):
        deny.add(str(exercises_root))
    spec = importlib.util.find_spec("mixer_ref")
    if spec and spec.origin:
        package = Path(spec.origin).resolve().parent
        deny.add(str(package))
        repo = package.parent
        if (repo / "pyproject.toml").exists():  # an editable install: the repository
            venv = Path(sys.prefix).resolve()
            if venv.is_relative_to(repo):  # ... except the virtual environment in it
                deny.update(str(e) for e in repo.iterdir() if not venv.is_relative_to(e))
            else:
                deny.add(str(repo))
    return sorted(deny)


def grade_submission(path: Path, autograder: Autograder, zygote: Zygote, *,
                     autograder_path: Path, timeout: float = 300, memory_mb: int = 2048
                     ) -> Result:
    """Grades one notebook; never raises for anything the notebook does."""
    result = Result(possible={q.name: q.points for q in autograder.questions})
    result.scores = dict.fromkeys(result.possible, 0.0)
    try:
        cells = notebook_cells(path)
    except ValueError as err:
        result.status = f"grader error: {err}"
        return result
    autograder.install_support()
    questions = {q.name: q for q in autograder.questions}
    done: set[str] = set()
    current = None
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir:
        # the submissions' folder too: no notebook may read another learner's answers
        deny = [*deny_list(autograder_path), str(path.resolve().parent)]
        config = {"workdir": workdir, "cells": cells, "memory_mb": memory_mb,
                  "cpu_seconds": int(timeout) + 5, "deny": deny}
        sock, pid = zygote.spawn(config)
        channel = Channel(sock, pid, timeout)
        env = LearnerNamespace(channel)
        try:
            while True:
                message, _ = channel.receive()
                event = message.get("event")
                if event == "check":
                    name = message.get("question")
                    if name in questions and name not in done:
                        current = name
                        run_question(questions[name], env, result)
                        done.add(name)
                        current = None
                    channel.send({"op": "continue"})
                elif event == "done":
                    for name, question in questions.items():
                        if name not in done:
                            current = name
                            run_question(question, env, result)
                            done.add(name)
                    current = None
                    channel.send({"op": "exit"})
                    break
                else:
                    raise SandboxGone("an unexpected message")
        except SandboxGone as err:
            where = f" while grading {current}" if current else ""
            graded = ", ".join(sorted(done)) or "none"
            if str(err) == "timeout":
                result.status = (f"timed out after {timeout:g} s{where}: questions graded "
                                 f"before it keep their points ({graded})")
            else:
                result.status = (f"the notebook's process ended{where}: questions graded "
                                 f"before it keep their points ({graded})")
        finally:
            channel.kill()
    return result


def probe(cells: list[str], names: list[str], zygote: Zygote, *, deny: list[str],
          timeout: float = 60, memory_mb: int = 2048) -> dict:
    """Runs ``cells`` in a sandbox and returns the named globals (data only; others None).

    For tests of the sandbox itself: a cell can record what it tried and what happened."""
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir:
        sock, pid = zygote.spawn({"workdir": workdir, "cells": cells, "memory_mb": memory_mb,
                                  "cpu_seconds": int(timeout) + 5, "deny": deny})
        channel = Channel(sock, pid, timeout)
        try:
            while True:
                message, _ = channel.receive()
                if message.get("event") == "done":
                    env = LearnerNamespace(channel)
                    found = {}
                    for name in names:
                        value = env.get(name)
                        found[name] = None if isinstance(value, Remote) else value
                    channel.send({"op": "exit"})
                    return found
                channel.send({"op": "continue"})
        finally:
            channel.kill()
