"""The notebooks' setup step: install what this runtime needs, then report what is there.

Every notebook's first code cell (written by `make sync-links`) installs the course package
without its dependencies and calls `setup()`:

* On Colab it detects the runtime (TPU, GPU or CPU) and installs `mixer_ref`'s
  dependencies with pip: `jax[tpu]` on a TPU, so that libtpu matches jax; `jax[cuda12]` on a
  GPU, so that the CUDA plugin matches jaxlib; plain `jax` on a CPU. The versions Colab has
  already installed of the packages in `KEEP` (numpy and pandas, which Colab's kernel
  imports before the first cell, and torch, whose CUDA wheels are gigabytes) are passed to
  pip as constraints, so pip changes none of them; so are Colab's jax and jaxlib when they
  are in mixer_ref's range, since Colab runs them with its libtpu or CUDA plugin, and
  a newer jaxlib and libtpu are about 500 MB. PyTorch is never downloaded.
* If pip nevertheless changed a package that this kernel had already imported, the old
  version stays loaded next to the new files: `setup()` explains that and restarts the
  kernel once, the way Colab does (`os.kill(os.getpid(), 9)`); run the cell again after it.
* Anywhere else it installs nothing.

In both cases it prints the runtime, the versions and JAX's backend and devices, and says
loudly when JAX fell back to the CPU on a TPU or GPU runtime.

This is a top-level module, not part of `mixer_ref`, so that importing it imports neither
`mixer_ref` nor jax before their versions are settled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

RUNTIMES = ("tpu", "gpu", "cpu")
# The jax extra that brings the matching accelerator runtime (libtpu, CUDA plugin).
JAX_EXTRA = {"tpu": "tpu", "gpu": "cuda12", "cpu": None}
# Installed versions that pip must keep: Colab's kernel imports numpy and pandas before the
# first cell runs, the others are large or pinned against each other by Colab's image.
KEEP = ("numpy", "pandas", "scipy", "scikit-learn", "pillow", "torch", "torchvision",
        "torchaudio")
# What the graded exercises need beyond mixer_ref (`pip install` syntax).
EXERCISE_REQUIREMENTS = ("otter-grader>=7.0.0,<8",)
# Printed with their installed versions by `report()`.
REPORTED = ("mixer_ref", "jax", "jaxlib", "libtpu", "jax-cuda12-plugin", "flax", "optax",
            "orbax-checkpoint", "numpy", "scipy", "scikit-learn", "torch", "otter-grader")
# Written when setup() restarts the kernel, so that it restarts at most once per machine.
RESTART_MARK = Path(tempfile.gettempdir()) / "mixer_ref_setup.restarted"
# Where exercises fetch their tests on Colab (MIXER_COURSE_DIR overrides it).
COURSE_DIR = Path("/content/course")


def on_colab() -> bool:
    return "google.colab" in sys.modules


def detect_runtime(dev: Path = Path("/dev")) -> str:
    """'tpu', 'gpu' or 'cpu': MIXER_RUNTIME if set, else what the device files say.

    TPU VMs expose their chips as /dev/accel* (v4) or /dev/vfio/<n> (v5e, v6e); NVIDIA GPUs
    as /dev/nvidia<n>.
    """
    name = os.environ.get("MIXER_RUNTIME")
    if name is not None:
        if name not in RUNTIMES:
            raise ValueError(f"MIXER_RUNTIME must be one of {RUNTIMES}, got {name!r}.")
        return name
    if any(dev.glob("accel[0-9]*")) or any((dev / "vfio").glob("[0-9]*")):
        return "tpu"
    if any(dev.glob("nvidia[0-9]*")):
        return "gpu"
    return "cpu"


def installed() -> dict[str, str]:
    """{canonical distribution name: version} of everything installed."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
            if d.metadata["Name"]}


def requirements(runtime: str, dist: str = "mixer_ref") -> list[str]:
    """`dist`'s required dependencies (no extras), with jax's accelerator extra for `runtime`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}.")
    out = []
    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (torch, book, dev, ...): not installed here
        if canonicalize_name(req.name) == "jax" and JAX_EXTRA[runtime]:
            req.extras = {JAX_EXTRA[runtime]}
        out.append(str(req))
    return out


def constraints(versions: dict[str, str], jax_range: str = "") -> list[str]:
    """`name==version` for each installed package of KEEP, and for jax and jaxlib if the
    installed jax is in `jax_range` (a specifier such as ">=0.7.2")."""
    kept = [name for name in map(canonicalize_name, KEEP) if name in versions]
    jax = versions.get("jax")
    if jax and "jaxlib" in versions and Requirement(f"jax{jax_range}").specifier.contains(
            jax, prereleases=True):
        kept += ["jax", "jaxlib"]
    return [f"{name}=={versions[name]}" for name in kept]


def imported_distributions() -> set[str]:
    """Canonical names of the distributions that provide a module this process imported."""
    providers = metadata.packages_distributions()
    top = {name.partition(".")[0] for name in list(sys.modules)}
    return {canonicalize_name(d) for module in top for d in providers.get(module, ())}


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """{name: (old version or None, new version)} for what pip installed or replaced."""
    return {name: (before.get(name), version) for name, version in sorted(after.items())
            if before.get(name) != version}


def downloaded_bytes(pip_output: str) -> int:
    """The total size of the files pip reported downloading ("Downloading x.whl (1.2 MB)")."""
    units = {"B": 1, "bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    return int(sum(float(n) * units[unit] for n, unit in re.findall(
        r"^\s*Downloading \S+ \(([\d.]+) (bytes|B|kB|MB|GB)\)", pip_output, re.M)))


def pip_install(args: list[str], constraint_lines: list[str]) -> str:
    """`python -m pip install ARGS -c <constraint_lines>`, pip's output; raises if it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(constraint_lines) + "\n")
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off",
               "--upgrade-strategy", "only-if-needed", *args, "-c", f.name]
    done = subprocess.run(command, capture_output=True, text=True)
    Path(f.name).unlink()
    if done.returncode:
        raise RuntimeError(
            "pip could not install the course's dependencies while keeping "
            f"{', '.join(constraint_lines) or 'nothing'} as installed.\n"
            f"command: {' '.join(command)}\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def source_of(dist: str = "mixer_ref") -> tuple[str, str | None]:
    """(url, revision) that `dist` was installed from (PEP 610 direct_url.json)."""
    text = metadata.distribution(dist).read_text("direct_url.json")
    if text is None:
        raise RuntimeError(f"{dist} was not installed from a URL or a folder, so there is no "
                           "repository to fetch the exercise tests from.")
    info = json.loads(text)
    return info["url"], info.get("vcs_info", {}).get("requested_revision")


def fetch_exercise(name: str, course_dir: Path) -> Path:
    """The student folder of exercise `name`, copied from where mixer_ref came from."""
    student = course_dir / "exercises" / name / "student"
    if not student.is_dir():
        url, revision = source_of()
        if url.startswith("file://"):
            local = Path(unquote(urlparse(url).path)) / "exercises" / name / "student"
            shutil.copytree(local, student)
        else:
            branch = ["--branch", revision] if revision else []
            subprocess.run(["git", "clone", "-q", "--depth", "1", *branch, url, str(course_dir)],
                           check=True)
    if not (student / "tests").is_dir():
        raise FileNotFoundError(f"no tests/ in {student}: is {name!r} an exercise?")
    return student


def restart_kernel(changed: dict[str, tuple[str | None, str]]) -> None:
    """Explains why, then restarts the kernel once (Colab restarts a kernel that died)."""
    lines = [f"    {name} {old} -> {new}" for name, (old, new) in changed.items()]
    if RESTART_MARK.exists():
        print("!" * 78, "pip changed packages that this kernel has already imported:",
              *lines, "The kernel was already restarted once. Restart it yourself",
              "(Runtime > Restart session), then run this cell again.", "!" * 78, sep="\n")
        return
    RESTART_MARK.write_text("\n".join(lines) + "\n")
    print("pip replaced packages that this kernel had already imported:", *lines,
          "Their old versions are still loaded, and mixing them with the new files fails",
          "in odd ways. Restarting the kernel now; when it is back, run this cell again.",
          sep="\n", flush=True)
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def report(runtime: str) -> dict:
    """Prints runtime, versions, JAX backend and devices; warns if JAX fell back to the CPU."""
    versions = installed()
    shown = {name: versions[canonicalize_name(name)] for name in REPORTED
             if canonicalize_name(name) in versions}
    import jax  # only now: its version is settled

    backend, devices = jax.default_backend(), jax.devices()
    print(f"runtime: {runtime} | Python {sys.version.split()[0]} | "
          + ", ".join(f"{k} {v}" for k, v in shown.items()))
    print(f"JAX backend: {backend}, {len(devices)} device(s): {devices}")
    if "torch" not in versions:
        print("PyTorch is not installed, and setup() does not install it: the PyTorch cells "
              "need `pip install torch`.")
    if runtime != "cpu" and backend == "cpu":
        print("!" * 78,
              f"JAX FELL BACK TO THE CPU on a {runtime.upper()} runtime: everything will run, "
              "but slowly.",
              "Check Runtime > Change runtime type, then Runtime > Disconnect and delete "
              "runtime, and run the notebook again from the top.",
              "!" * 78, sep="\n", file=sys.stderr)
    return {"runtime": runtime, "backend": backend, "devices": [str(d) for d in devices],
            "versions": shown}


def setup(exercise: str | None = None, *, install: bool | None = None) -> dict:
    """Installs what this runtime needs (on Colab, or if `install`), then `report()`s.

    `exercise` (a folder name such as "01_patch_embedding") also installs otter-grader and,
    on Colab, fetches that exercise's tests and changes into its student folder.
    """
    install = on_colab() if install is None else install
    runtime = detect_runtime()
    if install:
        before = installed()
        wanted = requirements(runtime) + (list(EXERCISE_REQUIREMENTS) if exercise else [])
        jax_range = next((str(Requirement(r).specifier) for r in wanted
                          if Requirement(r).name == "jax"), "")
        kept = constraints(before, jax_range)
        print(f"{runtime.upper()} runtime: installing {' '.join(wanted)}, keeping "
              f"{', '.join(kept)}", flush=True)
        size = downloaded_bytes(pip_install(wanted, kept))
        changed = changes(before, installed())
        print(f"  downloaded {size / 1e6:.1f} MB")
        for name, (old, new) in changed.items():
            print(f"  {name}: {old or 'new'} -> {new}")
        if not changed:
            print("  nothing to change")
        stale = {name: change for name, change in changed.items()
                 if name in imported_distributions()}
        if stale:
            restart_kernel(stale)
        torch = before.get("torch")
        torch_range = next((Requirement(r).specifier for r in metadata.requires("mixer_ref")
                            if Requirement(r).name == "torch"), None)
        if torch and torch_range is not None and not torch_range.contains(
                Version(torch).base_version):
            print(f"!!! PyTorch {torch} is outside mixer_ref's range {torch_range}.",
                  file=sys.stderr)
    if exercise and install:
        course_dir = Path(os.environ.get("MIXER_COURSE_DIR", COURSE_DIR))
        os.chdir(fetch_exercise(exercise, course_dir))
        print(f"exercise tests: {Path.cwd() / 'tests'}")
    return report(runtime)
