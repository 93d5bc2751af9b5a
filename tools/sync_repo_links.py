"""Keep every notebook's Colab badge and `pip install` line in step with `_config.yml`.

`_config.yml`'s `repository` section (url, branch) is the one home of the repository's
address. Two things in each notebook `notebooks/<name>.ipynb` are derived from it:

* the Colab badge, in the notebook's first cell, which is a markdown cell:

      [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/notebooks/<name>.ipynb)

* the setup cell, the notebook's first code cell, which installs the course package on
  Colab only:

      import sys

      if "google.colab" in sys.modules:
          %pip install -q "mixer_ref[torch] @ git+https://github.com/<owner>/<repo>@<branch>"

Authors never edit these URLs by hand: `make sync-links` (this script) rewrites them, and
adds a missing badge at the top of the notebook. tests/test_book.py fails when a
notebook disagrees with `_config.yml`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# `[![Open In Colab](<image>)](<url>)`; group "url" is the link target.
BADGE_RE = re.compile(
    r"\[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\((?P<url>[^)\s]*)\)"
)
# `mixer_ref[extras] @ git+<url>`; group "url" is everything after `git+`.
PIP_RE = re.compile(r"mixer_ref(?:\[[^\]]*\])?\s*@\s*git\+(?P<url>[^\s\"']+)")
COLAB_GUARD = 'if "google.colab" in sys.modules:'


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


def sync_notebook(path: Path, root: Path = ROOT) -> bool:
    """Rewrite the badge and pip-install URLs of one notebook; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    badge = badge_markdown(path, root)

    cells = nb.cells
    if not any(c.cell_type == "markdown" and BADGE_RE.search(c.source) for c in cells):
        if cells and cells[0].cell_type == "markdown":
            cells[0].source = badge + "\n\n" + cells[0].source
        else:
            cells.insert(0, nbformat.v4.new_markdown_cell(badge))
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = BADGE_RE.sub(lambda m: badge, cell.source)
        elif cell.cell_type == "code":
            cell.source = PIP_RE.sub(
                lambda m: m[0][: m.start("url") - m.start()] + pip_url(root), cell.source
            )

    if nbformat.writes(nb) == before:
        return False
    nbformat.write(nb, path)
    return True


def main() -> int:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        if sync_notebook(path):
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
