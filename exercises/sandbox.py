"""The learner's side of grading: a sandbox process that runs a notebook's cells.

``grade.py`` starts one *zygote* per batch: ``python -I exercises/sandbox.py FD``. The
zygote imports NumPy, JAX, Flax, optax, PyTorch and einops once, never ``mixer_ref``, and
then forks one sandbox per submission on request. A sandbox

* closes every file descriptor but its own socket, and sends its output to /dev/null;
* sets its resource limits: address space (memory), CPU time, file size, no core dumps;
* installs a seccomp filter (Linux, x86_64): no new processes, no ptrace, no signals to
  other processes, whatever code asks, native code included;
* makes ``mixer_ref`` unreachable: any import of it (or of ``ctypes``, ``_posixsubprocess``)
  fails, and an audit hook, which Python code cannot remove, refuses to open, list, change
  or remove any path of the ``mixer_ref`` package, of the exercises and their autograders,
  of the repository outside its virtual environment, and of other processes' ``/proc``
  entries; it also refuses to start processes, send signals to others or open sockets;
* runs the submission's code cells (sources only, with IPython syntax translated), each
  error caught, ``BaseException`` included;
* at each ``grader.check("qK")`` cell, and at the end, hands control to the test runner,
  which then calls the learner's functions and objects through ``wire`` messages.

The test runner (``grade.py``) holds the tests, computes every reference value and every
score itself; a sandbox only ever returns what the learner's code computed.
"""

from __future__ import annotations

import io
import json
import linecache
import os
import re
import resource
import signal
import socket
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wire  # noqa: E402  (exercises/wire.py, next to this file)

CHECK = re.compile(r'^\s*grader\.check\(\s*["\'](q\d+)["\']\s*\)\s*;?\s*$')
BLOCKED_MODULES = ("mixer_ref", "ctypes", "_ctypes", "_posixsubprocess", "cffi",
                   "_multiprocessing", "multiprocessing")
FORBIDDEN = "calling mixer_ref here is not allowed; implement it yourself"
PROCESS_EVENTS = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                  "os.forkpty", "subprocess.Popen", "pty.spawn", "os.startfile",
                  "socket.__new__", "socket.bind", "socket.connect", "socket.sendto",
                  "resource.setrlimit", "resource.prlimit", "sys.remote_exec"}
PATH_EVENT_PREFIXES = ("open", "os.", "shutil.", "glob.", "pathlib.", "tempfile.")
CELL_PREFIX = "<cell "


def preload() -> None:
    """Imports the libraries learners use, so that each sandbox starts warm."""
    import einops  # noqa: F401
    import flax.nnx  # noqa: F401
    import jax  # noqa: F401
    import jax.numpy  # noqa: F401
    import numpy  # noqa: F401
    import optax  # noqa: F401
    import torch  # noqa: F401
    import torch.nn.functional  # noqa: F401
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401


class Blocker:
    """A meta-path finder that refuses the blocked modules before any other finder runs."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.split(".")[0]
        if top == "mixer_ref":
            raise ModuleNotFoundError(f"mixer_ref: {FORBIDDEN}", name=name)
        if top in BLOCKED_MODULES:
            raise ModuleNotFoundError(f"{top} is not available while grading", name=name)
        return None


def install_guard(deny: list[str]) -> None:
    """The import blocker and the audit hook; neither can be undone from Python code."""
    for name in [n for n in sys.modules if n.split(".")[0] == "mixer_ref"]:
        del sys.modules[name]
    sys.meta_path.insert(0, Blocker())
    import _posixsubprocess

    if hasattr(_posixsubprocess, "fork_exec"):
        del _posixsubprocess.fork_exec  # it starts processes without an audit event
    for name in ("_posixsubprocess", "_ctypes", "ctypes"):
        sys.modules.pop(name, None)
    own = str(os.getpid())
    roots = tuple(sorted({os.path.realpath(d) for d in deny}))
    proc_pid = re.compile(r"^/proc/(\d+)(/|$)")
    realpath, abspath, fspath = os.path.realpath, os.path.abspath, os.fsdecode
    isinstance_, str_, bytes_ = isinstance, str, bytes

    def denied(path) -> bool:
        try:
            if isinstance_(path, int):
                return False
            text = fspath(path) if isinstance_(path, str_ | bytes_ | os.PathLike) else None
        except Exception:
            return True
        if text is None:
            return False
        real = realpath(text)
        low = real.lower()
        if "mixer_ref" in low or "mixer-ref" in low:
            return True
        if any(real == r or real.startswith(r + "/") for r in roots):
            return True
        for form in (abspath(text), real):  # /proc/<pid>/cwd resolves to somewhere else
            m = proc_pid.match(form)
            if m and m.group(1) != own:
                return True
        return False

    def hook(event: str, args: tuple) -> None:
        if event == "import":
            top = str(args[0]).split(".")[0]
            if top in BLOCKED_MODULES:
                raise ModuleNotFoundError(
                    f"mixer_ref: {FORBIDDEN}" if top == "mixer_ref"
                    else f"{top} is not available while grading", name=str(args[0]))
            return
        if event.startswith("ctypes.") or event in PROCESS_EVENTS:
            raise PermissionError(f"{event} is not allowed while grading")
        if event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if str(args[0]) != own:
                raise PermissionError("signals to other processes are not allowed")
            return
        if event.startswith(PATH_EVENT_PREFIXES):
            for arg in args:
                if denied(arg):
                    raise PermissionError(f"{event}: this path is not readable while grading")

    sys.addaudithook(hook)


def forbid_new_processes() -> bool:
    """A seccomp filter, which the kernel enforces on native code too: no execve, fork,
    vfork, clone of anything but a thread, ptrace, process_vm_readv/writev, and signals
    only to this process. Returns False where it is not available (only Linux on x86_64).

    The audit hook already refuses these in Python; this closes the ways around it, such
    as a fresh copy of ``_posixsubprocess`` loaded with ``ExtensionFileLoader``.
    """
    import ctypes
    import platform
    import struct

    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, JSET, RET
    allow, errno_ret, kill = 0x7FFF0000, 0x00050000, 0x80000000
    eperm, enosys = 1, 38
    own = os.getpid()
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, 0xC000003E), (ret, 0, 0, kill),  # x86_64 only
            (ld, 0, 0, 0), (jset, 0, 1, 0x40000000), (ret, 0, 0, errno_ret | eperm)]  # x32
    for nr in (59, 322, 57, 58, 101, 310, 311, 200):  # execve(at) fork vfork ptrace pvm tkill
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno_ret | eperm)]
    prog += [(jeq, 0, 1, 435), (ret, 0, 0, errno_ret | enosys)]  # clone3: glibc uses clone
    for nr in (62, 234):  # kill(pid, sig), tgkill(tgid, tid, sig): this process only
        prog += [(jeq, 0, 3, nr), (ld, 0, 0, 16), (jeq, 1, 0, own),
                 (ret, 0, 0, errno_ret | eperm), (ld, 0, 0, 0)]
    prog += [(jeq, 0, 3, 56), (ld, 0, 0, 16), (jset, 1, 0, 0x00010000),  # clone: CLONE_THREAD
             (ret, 0, 0, errno_ret | eperm), (ret, 0, 0, allow)]
    code = b"".join(struct.pack("<HBBI", op, jt, jf, k) for op, jt, jf, k in prog)
    buffer = ctypes.create_string_buffer(code, len(code))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    program = Program(len(prog), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
    return True


def limit_resources(memory_mb: int, cpu_seconds: int) -> None:
    """Address space = what the warm process uses now + ``memory_mb``; CPU; files; cores."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    now = pages * os.sysconf("SC_PAGE_SIZE")
    for which, value in ((resource.RLIMIT_AS, now + memory_mb * 2**20),
                         (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_FSIZE, 64 * 2**20),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


class _Otter:
    """Stands in for otter inside a sandbox: the check cells are the grader's, not otter's.

    (``mixer_ref_setup``, which the setup cell imports, is a stand-in too.)"""

    class Notebook:
        def __init__(self, *args, **kwargs):
            pass

        def check(self, *args, **kwargs):
            return None

        def check_all(self, *args, **kwargs):
            return None

        def export(self, *args, **kwargs):
            return None


class _Shell:
    """A ``get_ipython()`` whose magics and shell commands do nothing."""

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, *args, **kwargs):
        return None

    def system(self, *args, **kwargs):
        return None

    def getoutput(self, *args, **kwargs):
        return []


class Sink(io.TextIOBase):
    """Where the learner's prints go: counted, kept to a few kilobytes, never shown."""

    def __init__(self):
        self.kept = []

    def write(self, s):
        if sum(len(k) for k in self.kept) < 4000:
            self.kept.append(str(s)[:4000])
        return len(s)


class Session:
    """One submission: runs its cells and answers the test runner's requests."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.objects: dict[int, object] = {}
        self.env: dict = {"__name__": "__main__", "__builtins__": __builtins__,
                          "get_ipython": _Shell}
        self.errors: list[list] = []  # [cell number, exception type, message]

    # --- values ---------------------------------------------------------------------
    def keep(self, obj) -> int:
        number = len(self.objects) + 1
        self.objects[number] = obj
        return number

    def resolve(self, number: int):
        if number not in self.objects:
            raise wire.WireError(f"unknown handle {number}")
        return self.objects[number]

    def send(self, message: dict, values: dict | None = None) -> None:
        encoder = wire.Encoder(self.keep)
        try:
            payload = {k: encoder.encode(v) for k, v in (values or {}).items()}
        except Exception as err:  # a value that cannot cross: say so instead
            encoder = wire.Encoder(self.keep)
            payload = {}
            message = {"error": _describe(err)}
        wire.send(self.sock, {**message, **payload}, encoder)

    def receive(self) -> tuple[dict, wire.Decoder]:
        message, arrays = wire.receive(self.sock)
        return message, wire.Decoder(arrays, self.resolve)

    # --- requests -------------------------------------------------------------------
    def serve(self) -> None:
        """Answers requests until the runner says continue (or exit)."""
        while True:
            request, decoder = self.receive()
            op = request.get("op")
            if op == "continue":
                return
            if op == "exit":
                os._exit(0)
            try:
                result, extra = self.handle(op, request, decoder)
            except BaseException as err:  # noqa: BLE001 - learner code may raise anything
                self.send({"error": _describe(err)})
                continue
            self.send(extra, {"value": result})

    def handle(self, op, request, decoder):
        if op == "global":
            name = str(request["name"])
            if name not in self.env:
                return None, {"missing": True}
            return self.env[name], {}
        if op == "errors":
            return self.errors[-5:], {}
        if op == "getattr":
            return getattr(decoder.decode(request["target"]), str(request["name"])), {}
        if op == "eval":
            names = decoder.decode(request["names"])
            namespace = _eval_namespace()
            namespace.update(names)
            if request.get("source"):
                exec(compile(str(request["source"]), "<grader>", "exec"), namespace)
            return eval(compile(str(request["expr"]), "<grader>", "eval"), namespace), {}
        if op == "call":
            target = decoder.decode(request["target"])
            args = decoder.decode(request["args"])
            kwargs = decoder.decode(request["kwargs"])
            before = _snapshot((args, kwargs))
            counter = LineCounter() if request.get("count_lines") else None
            with _quiet():
                if counter:
                    result = counter.run(target, args, kwargs)
                else:
                    result = target(*args, **kwargs)
            extra = {"mutated": _changed(before, (args, kwargs))}
            if counter:
                extra["lines"] = counter.lines
                extra["trace_kept"] = counter.kept
            return result, extra
        raise wire.WireError(f"unknown request {op!r}")

    # --- the notebook ---------------------------------------------------------------
    def run(self, cells: list[str]) -> None:
        from IPython.core.inputtransformer2 import TransformerManager

        transform = TransformerManager().transform_cell
        for index, source in enumerate(cells):
            m = CHECK.match(source)
            if m:
                self.send({"event": "check", "question": m.group(1), "cell": index})
                self.serve()
                continue
            filename = f"{CELL_PREFIX}{index}>"
            try:
                code = transform(source)
                linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
                with _quiet():
                    exec(compile(code, filename, "exec"), self.env)
            except BaseException as err:  # noqa: BLE001 - a failing cell is graded, not fatal
                described = _describe(err)
                self.errors.append([index, described["type"], described["message"][:500]])
        self.send({"event": "done"})
        self.serve()
        os._exit(0)


def _eval_namespace() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import torch

    return {"jax": jax, "jnp": jnp, "np": np, "optax": optax, "torch": torch,
            "count_lines": _count_lines}


def _count_lines(fn, *args, **kwargs):
    counter = LineCounter()
    counter.run(fn, args, kwargs)
    return counter.lines


class LineCounter:
    """Counts the lines of notebook code that a call executes (loops make it grow)."""

    def __init__(self):
        self.lines = 0
        self.kept = True

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._local

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename.startswith(CELL_PREFIX):
            return self._local
        return None

    def run(self, fn, args, kwargs):
        sys.settrace(self._global)
        try:
            return fn(*args, **kwargs)
        finally:
            self.kept = sys.gettrace() == self._global
            sys.settrace(None)


class _quiet:
    """Sends the learner's prints to a sink (the fd-level output is /dev/null already)."""

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = Sink()

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved
        return False


def _describe(err: BaseException) -> dict:
    try:
        message = str(err)
    except BaseException:  # noqa: BLE001 - a __str__ that raises is the learner's
        message = "<the exception's message could not be read>"
    return {"type": type(err).__name__[:100],
            "mro": [c.__name__[:100] for c in type(err).__mro__][:20],
            "message": message[:wire.MAX_STRING]}


def _snapshot(value):
    try:
        encoder = wire.Encoder(lambda obj: -1)
        tree = encoder.encode(value)
        return json.dumps(tree), [a.copy() for a in encoder.arrays]
    except Exception:  # not comparable: nothing to report
        return None


def _changed(before, value) -> bool:
    if before is None:
        return False
    after = _snapshot(value)
    if after is None or after[0] != before[0] or len(after[1]) != len(before[1]):
        return True
    import numpy as np

    return not all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
                   for a, b in zip(before[1], after[1], strict=True))


def child(sock: socket.socket, config: dict) -> None:
    """The forked sandbox: lock down, then run the submission."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    os.chdir(config["workdir"])
    limit_resources(int(config["memory_mb"]), int(config["cpu_seconds"]))
    forbid_new_processes()
    sys.modules["otter"] = types.ModuleType("otter")
    sys.modules["otter"].Notebook = _Otter.Notebook
    # the notebooks' setup cell (tools/sync_repo_links.py): nothing to install or fetch here
    sys.modules["mixer_ref_setup"] = types.ModuleType("mixer_ref_setup")
    sys.modules["mixer_ref_setup"].setup = lambda *args, **kwargs: None
    install_guard(config["deny"])
    session = Session(sock)
    try:
        session.run([str(c) for c in config["cells"]])
    except BaseException:  # noqa: BLE001 - the runner sees the closed socket
        os._exit(3)


def zygote(control: socket.socket) -> None:
    """Waits for spawn requests: a JSON config and a socket; forks a sandbox for each."""
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked sandboxes are reaped at once
    control.sendall(b"ready\n")
    while True:
        try:
            size_bytes, fds, _, _ = socket.recv_fds(control, 8, 1)
        except OSError:
            return
        if not size_bytes:
            return
        size = int.from_bytes(size_bytes, "little")
        data = b""
        while len(data) < size:
            chunk = control.recv(size - len(data))
            if not chunk:
                return
            data += chunk
        config = json.loads(data)
        sock = socket.socket(fileno=fds[0])
        pid = os.fork()
        if pid == 0:
            control.close()
            try:
                child(sock, config)
            finally:
                os._exit(4)
        sock.close()
        control.sendall(f"{pid}\n".encode())


if __name__ == "__main__":
    zygote(socket.socket(fileno=int(sys.argv[1])))
