"""Keep every notebook's Colab badge and setup cell in step with `_config.yml`.

`_config.yml`'s `repository` section (url, branch) is the one home of the repository's
address. Derived from it:

* the Colab badge, in the first cell of each chapter `notebooks/<name>.ipynb`, which is a
  markdown cell:

      [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/notebooks/<name>.ipynb)

* the head of the setup cell, the first code cell of every chapter and of every exercise
  notebook (`exercises/NN_name/NN_name.ipynb` and its `student/` copy). On Colab it
  installs the course package without its dependencies, then `mixer_ref_setup.setup()`
  installs what the runtime needs and reports what it found (see mixer_ref_setup.py):

      # Setup, written by `make sync-links`: ...
      import sys

      if "google.colab" in sys.modules:
          %pip install -q --no-deps "mixer_ref @ git+https://github.com/<owner>/<repo>@<branch>"

      import mixer_ref_setup

      mixer_ref_setup.setup()          # exercises: setup(exercise="NN_name")

  What follows the head in that cell (the profile for chapters, the grader for exercises)
  is the author's and is kept. A cell written before this head existed (a
  `if "google.colab" in sys.modules:` block) has that block replaced by the head.

* the `mixer_ref @ git+...` requirement in each exercise's ASSIGNMENT CONFIG.

Authors never edit these by hand: `make sync-links` (this script) rewrites them, and adds a
missing badge at the top of a chapter. tests/test_book.py and tests/test_colab.py fail when
a notebook disagrees with `_config.yml` or with the head written here.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXERCISES = ROOT / "exercises"

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# `[![Open In Colab](<image>)](<url>)`; group "url" is the link target.
BADGE_RE = re.compile(
    r"\[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\((?P<url>[^)\s]*)\)"
)
# `mixer_ref[extras] @ git+<url>`; group "url" is everything after `git+`.
PIP_RE = re.compile(r"mixer_ref(?:\[[^\]]*\])?\s*@\s*git\+(?P<url>[^\s\"']+)")
COLAB_GUARD = 'if "google.colab" in sys.modules:'
SETUP_CALL_RE = re.compile(r"^mixer_ref_setup\.setup\(.*\)[ \t]*$", re.M)
SETUP_HEAD = """\
# Setup, written by `make sync-links`: on Colab it installs what this runtime needs, and it
# may restart the kernel once (then run this cell again); elsewhere it installs nothing.
# Either way it prints the runtime, the versions, and the devices JAX sees.
import sys

{guard}
    %pip install -q --no-deps "mixer_ref @ git+{url}"

import mixer_ref_setup

mixer_ref_setup.setup({args})
"""


def repository(root: Path = ROOT) -> tuple[str, str, str]:
    """(owner, name, branch) of the GitHub repository named in `_config.yml`."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config["repository"]
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", repo["url"])
    if match is None:
        raise ValueError(
            f"_config.yml repository.url must be https://github.com/<owner>/<repo>, "
            f"got {repo['url']!r}"
        )
    return match[1], match[2], repo.get("branch", "main")


def badge_url(notebook: Path, root: Path = ROOT) -> str:
    """The Colab URL that opens `notebook` from the repository."""
    owner, name, branch = repository(root)
    path = notebook.resolve().relative_to(root.resolve()).as_posix()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/{path}"


def badge_markdown(notebook: Path, root: Path = ROOT) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({badge_url(notebook, root)})"


def pip_url(root: Path = ROOT) -> str:
    """What follows `git+` in the setup cell's `pip install` of mixer_ref."""
    owner, name, branch = repository(root)
    return f"https://github.com/{owner}/{name}@{branch}"


def exercise_name(notebook: Path, root: Path = ROOT) -> str | None:
    """"NN_name" for an exercise notebook (master or student copy), None for a chapter."""
    parts = notebook.resolve().relative_to(root.resolve()).parts
    return parts[1] if parts[0] == "exercises" else None


def setup_head(notebook: Path, root: Path = ROOT) -> str:
    """The generated start of `notebook`'s setup cell."""
    exercise = exercise_name(notebook, root)
    args = f"exercise={exercise!r}".replace("'", '"') if exercise else ""
    return SETUP_HEAD.format(guard=COLAB_GUARD, url=pip_url(root), args=args)


def setup_tail(source: str) -> str | None:
    """What follows the generated head (or an old Colab guard block); None if neither."""
    if match := SETUP_CALL_RE.search(source):
        return source[match.end():]
    lines = source.splitlines(keepends=True)
    guard = next((i for i, line in enumerate(lines) if line.strip() == COLAB_GUARD), None)
    if guard is None:
        return None
    end = guard + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    return "".join(lines[end:])


def with_setup_head(source: str | None, head: str) -> str:
    """`head` followed by the author's part of the setup cell `source`."""
    tail = (source or "").strip("\n")
    return f"{head}\n{tail}" if tail else head.rstrip("\n")


def sync_notebook(path: Path, root: Path = ROOT) -> bool:
    """Rewrite the badge, setup cell head and pip URLs of one notebook; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    cells = nb.cells

    if exercise_name(path, root) is None:
        badge = badge_markdown(path, root)
        if not any(c.cell_type == "markdown" and BADGE_RE.search(c.source) for c in cells):
            if cells and cells[0].cell_type == "markdown":
                cells[0].source = badge + "\n\n" + cells[0].source
            else:
                cells.insert(0, nbformat.v4.new_markdown_cell(badge))
        for cell in cells:
            if cell.cell_type == "markdown":
                cell.source = BADGE_RE.sub(lambda m: badge, cell.source)

    head = setup_head(path, root)
    code = [c for c in cells if c.cell_type == "code" and c.source.strip()]
    tail = setup_tail(code[0].source) if code else None
    if tail is None:
        first = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(first, nbformat.v4.new_code_cell(with_setup_head(None, head)))
    else:
        code[0].source = with_setup_head(tail, head)
    for cell in cells:
        if cell.cell_type in ("code", "raw"):
            cell.source = PIP_RE.sub(
                lambda m: m[0][: m.start("url") - m.start()] + pip_url(root), cell.source
            )

    if nbformat.writes(nb) == before:
        return False
    nbformat.write(nb, path)
    return True


def notebooks(root: Path = ROOT) -> list[Path]:
    """The chapters, the exercise masters and their student copies."""
    return sorted([*(root / "notebooks").glob("*.ipynb"),
                   *(root / "exercises").glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"),
                   *(root / "exercises").glob("[0-9][0-9]_*/student/[0-9][0-9]_*.ipynb")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="notebooks to sync (default: every chapter and exercise)")
    args = parser.parse_args(argv)
    for path in args.paths or notebooks():
        if sync_notebook(path):
            print(f"updated {path.resolve().relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
