"""Refresh the copies of Colab's published package lists in tools/colab/.

    python tools/colab/refresh_freezes.py          # needs access to GitHub (not in CI)

Colab publishes `pip freeze` of each runtime in the repository googlecolab/backend-info:
pip-freeze.tpu.txt (TPU), pip-freeze.gpu.txt (GPU) and pip-freeze.txt (CPU). This script
downloads them unchanged from its main branch, and prints how the versions that matter to
the course moved. Afterwards run `make colab` (the emulation rebuilds from the new TPU list)
and tests/test_colab.py, which checks the lists against pyproject.toml's ranges.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = "https://raw.githubusercontent.com/googlecolab/backend-info/{ref}/{name}"
FILES = ("pip-freeze.tpu.txt", "pip-freeze.gpu.txt", "pip-freeze.txt")
WATCHED = ("numpy", "pandas", "scipy", "scikit-learn", "pillow", "jax", "jaxlib", "libtpu",
           "jax-cuda12-plugin", "flax", "optax", "orbax-checkpoint", "torch")


def versions(text: str) -> dict[str, str]:
    """{name: version} of the watched packages, from pins and from wheel URLs."""
    found = {}
    for line in text.splitlines():
        match = (re.fullmatch(r"([\w.-]+)==(\S+)", line)
                 or re.fullmatch(r"([\w.-]+) @ \S+/[\w.]+-([^-/]+)-\S+\.whl\S*", line))
        if match and match[1].lower() in WATCHED:
            found[match[1].lower()] = match[2].replace("%2B", "+")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="branch or commit (default: main)")
    args = parser.parse_args(argv)
    for name in FILES:
        url = SOURCE.format(ref=args.ref, name=name)
        with urllib.request.urlopen(url, timeout=60) as response:
            text = response.read().decode()
        if "==" not in text:
            raise ValueError(f"{url} does not look like a pip freeze:\n{text[:300]}")
        path = HERE / name
        old = versions(path.read_text()) if path.exists() else {}
        path.write_text(text)
        new = versions(text)
        moved = [f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v]
        print(f"{name}: " + ("; ".join(moved) if moved else "no watched version changed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
