"""Emulates Colab's TPU runtime from its published `pip freeze` and runs the course in it.

    python tools/colab/emulate.py              # build (or reuse) the environment, run, report
    python tools/colab/emulate.py --build-only

The environment is a Python 3.13 virtual environment (Colab's TPU runtime; the stored freeze's
wheel URLs still name cp312) under .cache/colab/ holding the
packages of `PACKAGES` (what the course and a Jupyter kernel touch) at the versions of
tools/colab/pip-freeze.tpu.txt. A pinned version without a wheel for Python 3.13 is replaced
by the lowest later release that has one (`uv pip compile --resolution lowest` with
`name>=version` constraints from the freeze); the report lists these substitutions. PyTorch
is left out: Colab installs its CPU build from PyTorch's own index, which these machines
cannot reach, and PyPI's build would download about 4 GB of CUDA libraries. The built
environment is reused while the freeze, `PACKAGES`, `PYTHON` and `UV` are unchanged.

Each run copies that environment (hard links) and this checkout's files, and in the copy,
with drive.py, on a runtime that says it is a TPU (MIXER_RUNTIME=tpu), under
MIXER_PROFILE=smoke, in kernels that first import numpy and pandas and register
`google.colab`, as Colab's kernel does:

1. runs notebook 01 from the top (without its PyTorch cells, as PyTorch is missing), its
   setup cell's `%pip install` pointed at the copy instead of GitHub; if the setup cell
   restarts the kernel, runs it all again in a new kernel, as a learner would;
2. runs exercise 01's student notebook the same way, its first answer taken from the master
   notebook's solution, up to `grader.check("q1")` (whose tests import mixer_ref.torch, so
   without PyTorch the check runs and reports that).

The setup cell prints the size of what pip downloaded (from pip's "Downloading" lines). The
report (JSON, also written to .cache/colab/report.json) gives the versions
before and after, what changed, the download size and each step's outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "colab"
FREEZE = HERE / "pip-freeze.tpu.txt"
PYTHON = "3.13"
UV = "uv==0.13.9"
# What the course imports, plus the kernel, nbclient and pip, at the freeze's versions.
PACKAGES = (
    "numpy", "pandas", "scipy", "scikit-learn", "pillow", "matplotlib", "ipywidgets",
    "jax", "jaxlib", "libtpu", "flax", "optax", "orbax-checkpoint", "chex", "einops",
    "safetensors", "tqdm", "packaging", "PyYAML", "ipykernel", "ipython", "jupyter_client",
    "nbclient", "nbformat", "pip", "setuptools",
)
NOTEBOOK = ROOT / "notebooks" / "01_patch_embedding.ipynb"
EXERCISE = "01_patch_embedding"
# Environment variables of this machine's pip set-up that Colab does not have.
PIP_LOCAL = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT")


def freeze_pins(text: str) -> dict[str, str]:
    """{name: version} for the `name==version` lines of a `pip freeze`."""
    pins = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if match:
            pins[match[1]] = match[2]
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_python(version: str = PYTHON) -> Path:
    """A Python `version` interpreter: on PATH, or one of pyenv's."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        works = subprocess.run([candidate, "-c", "import sys; print(sys.version)"],
                               capture_output=True, text=True)  # a pyenv shim may not
        if works.returncode == 0 and works.stdout.startswith(version + "."):
            return Path(candidate)
    raise FileNotFoundError(f"no Python {version}: looked for python{version} on PATH and in "
                            f"{pyenv}/{version}.*; install it (e.g. `pyenv install {version}`)")


def uv() -> Path:
    """The uv binary, installed once into .cache/colab/uv."""
    target = CACHE / "uv"
    binary = target / "bin" / "uv"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                        UV], check=True)
    return binary


def env_dir(freeze: Path = FREEZE) -> Path:
    """The cache folder of the environment for this freeze, package list and emulator."""
    key = hashlib.sha256("\n".join(
        [freeze.read_text(), *PACKAGES, PYTHON, UV]).encode())
    return CACHE / f"tpu-py{PYTHON}-{key.hexdigest()[:12]}"


def lock(folder: Path, python: Path, freeze: Path = FREEZE) -> dict[str, str]:
    """Resolves PACKAGES at the freeze's versions (or the lowest later ones) for `python`."""
    out = folder / "lock.txt"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pins = freeze_pins(freeze.read_text())
        (folder / "requirements.in").write_text("\n".join(PACKAGES) + "\n")
        (folder / "constraints.txt").write_text(
            "".join(f"{name}>={version}\n" for name, version in pins.items()))
        subprocess.run([str(uv()), "pip", "compile", "-q", "--no-header", "--no-annotate",
                        "--resolution", "lowest", "--only-binary", ":all:",
                        "--python", str(python), "-c", str(folder / "constraints.txt"),
                        str(folder / "requirements.in"), "-o", str(out) + ".tmp"],
                       check=True, env=clean_env())
        Path(str(out) + ".tmp").rename(out)
    return freeze_pins(out.read_text())


def build(freeze: Path = FREEZE) -> Path:
    """The emulated environment (built on first use), as its folder."""
    folder = env_dir(freeze)
    base = folder / "base"
    if (base / ".complete").exists():
        return folder
    python = find_python()
    lock(folder, python, freeze)
    shutil.rmtree(base, ignore_errors=True)
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(base)], check=True)
    subprocess.run([str(uv()), "pip", "install", "-q", "--no-deps", "--only-binary", ":all:",
                    "--python", str(base / "bin" / "python"), "-r", str(folder / "lock.txt")],
                   check=True, env=clean_env())
    (base / ".complete").write_text("")
    return folder


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the local package mirrors that Colab lacks."""
    env = {k: v for k, v in os.environ.items() if k not in PIP_LOCAL}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def copy_checkout(dest: Path) -> None:
    """The files git tracks or would track (not the ignored ones) of this checkout, to `dest`.

    pip builds a local folder in place, so the setup cell installs from this copy.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def run(freeze: Path = FREEZE, prepare=lambda source: None) -> dict:
    """Builds or reuses the environment, runs drive.py in a copy of it, returns the report."""
    folder = build(freeze)
    pins = freeze_pins(freeze.read_text())
    locked = freeze_pins((folder / "lock.txt").read_text())
    work, course, source = folder / "work", folder / "course", folder / "source"
    tmp = folder / "tmp"  # the kernels' TMPDIR, so setup()'s restart mark starts afresh
    for path in (work, course, source, tmp):
        shutil.rmtree(path, ignore_errors=True)
    tmp.mkdir()
    copy_checkout(source)
    prepare(source)
    subprocess.run(["cp", "-al", str(folder / "base"), str(work)], check=True)
    (work / ".complete").unlink()
    out = folder / "drive.json"
    env = clean_env(MIXER_RUNTIME="tpu", MIXER_PROFILE="smoke", PIP_NO_CACHE_DIR="1",
                    MIXER_COURSE_DIR=str(course), TMPDIR=str(tmp),
                    PATH=f"{work / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([str(work / "bin" / "python"), str(HERE / "drive.py"), "--root", str(source),
                    "--notebook", str(source / NOTEBOOK.relative_to(ROOT)),
                    "--exercise", EXERCISE, "--out", str(out)],
                   check=True, env=env, cwd=folder)
    driven = json.loads(out.read_text())
    frozen = {canonical(k): v for k, v in pins.items()}
    report = {
        "python": driven["python"],
        "substituted": {name: {"freeze": frozen.get(canonical(name)), "used": version}
                        for name, version in sorted(locked.items())
                        if frozen.get(canonical(name)) not in (None, version)},
        "not_in_freeze": sorted(n for n in locked if canonical(n) not in frozen),
        "download_bytes": driven["download_bytes"],
        **{k: v for k, v in driven.items() if k not in ("python", "download_bytes")},
    }
    (CACHE / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    if args.build_only:
        print(build())
        return 0
    report = run()
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
