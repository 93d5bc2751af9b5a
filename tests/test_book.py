"""The book's sources agree with each other: TOC, notebooks, _config.yml and references.bib.

Notebook conventions checked here (tools/sync_repo_links.py writes the URLs):
* the first cell is markdown and carries the Colab badge for this notebook;
* the first code cell is the setup cell: it starts with the head that
  tools/sync_repo_links.py generates (on Colab, `%pip install -q --no-deps
  "mixer_ref @ git+<repository url>@<branch>"`, then `mixer_ref_setup.setup()`);
* the notebook is stored executed, top to bottom, with no error outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from tools.sync_repo_links import (
    BADGE_RE,
    COLAB_GUARD,
    PIP_RE,
    ROOT,
    badge_url,
    pip_url,
    repository,
    setup_head,
)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCE_SUFFIXES = (".md", ".ipynb")


def toc_entries() -> list[str]:
    """Every `file:` of _toc.yml, root first, as paths without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(items):
        for item in items:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    walk(toc.get("chapters", []))
    return entries


def source_of(entry: str) -> Path | None:
    for suffix in SOURCE_SUFFIXES:
        if (path := ROOT / f"{entry}{suffix}").exists():
            return path
    return None


def book_sources() -> list[Path]:
    return [path for entry in toc_entries() if (path := source_of(entry)) is not None]


def test_repository_url_is_a_github_repository():
    owner, name, branch = repository()
    assert owner and name and branch


def test_every_toc_entry_exists():
    missing = [e for e in toc_entries() if source_of(e) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_toc_has_no_duplicates():
    entries = toc_entries()
    assert len(entries) == len(set(entries))


def test_every_notebook_is_in_the_toc():
    listed = set(toc_entries())
    orphans = [p.name for p in NOTEBOOKS if f"notebooks/{p.stem}" not in listed]
    assert not orphans, f"notebooks missing from _toc.yml: {orphans}"


def test_every_bibliography_entry_is_cited():
    keys = re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.M)
    assert keys, "references.bib has no entries"
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"
    text = "\n".join(p.read_text() for p in book_sources())
    cited = {
        key.strip()
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text)
        for key in group.split(",")
    }
    uncited = sorted(set(keys) - cited)
    assert not uncited, f"references.bib entries cited nowhere in the book: {uncited}"
    unknown = sorted(cited - set(keys))
    assert not unknown, f"citations without a references.bib entry: {unknown}"


# --- notebooks -----------------------------------------------------------------

needs_notebooks = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks/*.ipynb yet")


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, nbformat.read(request.param, as_version=4)


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


@needs_notebooks
def test_notebook_is_stored_executed_in_order(notebook):
    path, nb = notebook
    counts = [c.execution_count for c in code_cells(nb)]
    assert None not in counts, f"{path.name}: unexecuted code cells; run it top to bottom"
    assert counts == sorted(set(counts)), f"{path.name}: cells ran out of order: {counts}"
    assert any(c.outputs for c in code_cells(nb)), f"{path.name}: no stored outputs"


@needs_notebooks
def test_notebook_has_no_error_outputs(notebook):
    path, nb = notebook
    errors = [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors, f"{path.name} has error outputs: {errors}"


@needs_notebooks
def test_notebook_sources_have_no_control_characters(notebook):
    # A notebook generated from Python strings can turn "\approx" into BEL + "pprox",
    # "\beta" into backspace + "eta", "\frac" into form feed + "rac".
    path, nb = notebook
    bad = [
        f"cell {i}: {m[0]!r} in {cell.source[max(m.start() - 20, 0) : m.end() + 20]!r}"
        for i, cell in enumerate(nb.cells)
        for m in re.finditer(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", cell.source)
    ]
    assert not bad, f"{path.name}: control characters (a lost backslash?):\n" + "\n".join(bad)


@needs_notebooks
def test_notebook_opens_with_its_colab_badge(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be markdown"
    urls = [
        m["url"] for c in nb.cells if c.cell_type == "markdown" for m in BADGE_RE.finditer(c.source)
    ]
    assert BADGE_RE.search(first.source), f"{path.name}: no Colab badge in the first cell"
    assert urls == [badge_url(path)], (
        f"{path.name}: Colab badge points to {urls}, expected [{badge_url(path)!r}]; "
        "run `make sync-links`"
    )


@needs_notebooks
def test_notebook_setup_cell_installs_mixer_ref_from_the_repository(notebook):
    path, nb = notebook
    cells = code_cells(nb)
    assert cells, f"{path.name}: no code cells"
    setup = cells[0].source
    assert COLAB_GUARD in setup, f"{path.name}: the first code cell lacks `{COLAB_GUARD}`"
    assert setup.startswith(setup_head(path)), (
        f"{path.name}: the first code cell does not start with the generated setup cell "
        f"(tools/sync_repo_links.py); run `make sync-links`")
    installs = [m["url"] for c in cells for m in PIP_RE.finditer(c.source)]
    assert PIP_RE.search(setup), f"{path.name}: the setup cell does not pip install mixer_ref"
    assert set(installs) == {pip_url()}, (
        f"{path.name}: installs mixer_ref from {installs}, expected git+{pip_url()}; "
        "run `make sync-links`"
    )
