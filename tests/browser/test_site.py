"""The built site works in a real browser, offline.

`make browser` builds the site (`make book`) and then runs this module. The site in
_build/html is served by `python -m http.server` on 127.0.0.1 and rendered by Debian's
headless Chromium (`--dump-dom` after JavaScript has run), with every host other than
127.0.0.1 unresolvable, so MathJax must come from the site itself. The server's request
log then shows every file the browser fetched.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import nbformat
import pytest
import yaml

from tools.sync_repo_links import ROOT, badge_url

pytestmark = pytest.mark.browser

SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Offline: only the local server resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
    # Run timers and loads (MathJax typesetting) for up to 10 s of virtual time.
    "--virtual-time-budget=10000",
]
LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src"}


def toc_pages() -> list[str]:
    """Every page of _toc.yml as a path without suffix, root first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(items):
        for item in items:
            if "file" in item:
                pages.append(item["file"])
            walk(item.get("sections", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    return pages


NOTEBOOK_PAGES = [p for p in toc_pages() if (ROOT / f"{p}.ipynb").exists()]


class Page(HTMLParser):
    """Links, ids, images and article text of one HTML document."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()
        self.anchors: list[dict[str, str]] = []
        self.images: list[str] = []
        self.article_text: list[str] = []
        self._article_depth = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag in LINK_ATTRS and attrs.get(LINK_ATTRS[tag]):
            self.links.append((tag, attrs[LINK_ATTRS[tag]]))
        if tag == "a":
            self.anchors.append(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "article" or self._article_depth:
            self._article_depth += tag not in {"img", "br", "hr", "input", "meta", "link"}

    def handle_endtag(self, tag):
        if self._article_depth:
            self._article_depth -= 1

    def handle_data(self, data):
        if self._article_depth:
            self.article_text.append(data)


def is_local(url: str) -> bool:
    return not re.match(r"^([a-z][a-z0-9+.-]*:|//)", url, re.I)


def target_file(page: Path, url: str) -> Path:
    path = unquote(urlsplit(url).path)
    target = (page.parent / path).resolve() if path else page
    return target / "index.html" if target.is_dir() else target


def parse(path: Path) -> Page:
    return Page(path.read_text(errors="replace"))


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium not found; `make chromium` installs Debian's package")
    return exe


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built site in {SITE}; run `make book` first (`make browser` does)")
    return SITE


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    """Base URL of a local server for the site, and the path of its request log."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "requests.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(site),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"http.server did not start on port {port}")
        yield base, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_chromium(exe: str, url: str, *args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, f"chromium failed on {url}:\n{result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def rendered(chromium, server) -> dict[str, str]:
    """The DOM of every TOC page after its JavaScript has run, by page name."""
    base, _ = server
    with ThreadPoolExecutor(max_workers=3) as pool:
        doms = pool.map(
            lambda p: run_chromium(chromium, urljoin(base, f"{p}.html"), "--dump-dom"),
            toc_pages(),
        )
        return dict(zip(toc_pages(), doms, strict=True))


@pytest.fixture(scope="module")
def requests_log(rendered, server) -> list[tuple[str, int]]:
    """(path, status) of every request the server answered while pages were rendered."""
    _, log = server
    return [
        (unquote(urlsplit(m[1]).path), int(m[2]))
        for m in re.finditer(r'"(?:GET|HEAD) (\S+) HTTP/[\d.]+" (\d{3})', log.read_text())
    ]


# --- every page ------------------------------------------------------------------


def test_every_toc_page_is_served(server):
    base, _ = server
    for page in ["index", *toc_pages()]:
        with urllib.request.urlopen(urljoin(base, f"{page}.html"), timeout=10) as response:
            assert response.status == 200, page
            assert response.read().strip(), f"{page}.html is empty"


def test_every_toc_page_renders_its_content(rendered):
    for page, dom in rendered.items():
        parsed = Page(dom)
        text = " ".join("".join(parsed.article_text).split())
        assert "<h1" in dom, f"{page}: no title in the rendered page"
        assert len(text) > 40, f"{page}: the rendered article is empty: {text!r}"


def test_no_broken_internal_links(site):
    # _static holds the themes' Jinja templates, which are not pages.
    pages = {p: parse(p) for p in site.rglob("*.html") if "_static" not in p.parts}
    broken = []
    for path, page in pages.items():
        for tag, url in page.links:
            if not is_local(url) or url.startswith("#") and len(url) == 1:
                continue
            target = target_file(path, url)
            fragment = urlsplit(url).fragment
            if not target.is_file():
                broken.append(f"{path.relative_to(site)}: <{tag}> {url}")
            elif fragment and target.suffix == ".html":
                ids = (pages.get(target) or parse(target)).ids
                if unquote(fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: <{tag}> {url} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_math_is_typeset_on_every_page_that_has_math(site, rendered):
    for page, dom in rendered.items():
        n_math = (site / f"{page}.html").read_text().count('class="math notranslate')
        n_typeset = dom.count("<mjx-container")
        assert n_typeset >= n_math, f"{page}: {n_math} formulas but {n_typeset} typeset"
        errors = re.findall(r'<mjx-merror[^>]*data-mjx-error="([^"]*)"', dom)
        assert "<mjx-merror" not in dom, f"{page}: MathJax reports errors: {errors}"
    assert rendered["book/start/notation"].count("<mjx-container") >= 10


def test_mathjax_and_its_fonts_come_from_the_site(server, rendered, requests_log):
    base, _ = server
    for page, dom in rendered.items():
        scripts = [url for tag, url in Page(dom).links if tag == "script"]
        remote = [url for url in scripts if not (is_local(url) or url.startswith(base))]
        assert not remote, f"{page} loads scripts from other hosts: {remote}"
    fetched = {path for path, status in requests_log if status == 200}
    assert "/mathjax/tex-mml-chtml.js" in fetched
    assert any(p.startswith("/mathjax/output/chtml/fonts/woff-v2/") for p in fetched), (
        "MathJax fetched no fonts from the site"
    )


def test_every_request_of_the_browser_was_served(requests_log):
    failed = [
        f"{status} {path}"
        for path, status in requests_log
        if status >= 400 and path != "/favicon.ico"
    ]
    assert not failed, "requests that failed while rendering:\n" + "\n".join(failed)


def test_screenshots(chromium, server):
    base, _ = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = {"landing": "book/intro"}
    if NOTEBOOK_PAGES:
        shots["notebook"] = NOTEBOOK_PAGES[0]
    for name, page in shots.items():
        out = SCREENSHOTS / f"{name}.png"
        out.unlink(missing_ok=True)
        run_chromium(chromium, urljoin(base, f"{page}.html"), f"--screenshot={out}")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot of {page}"


# --- notebook pages --------------------------------------------------------------

needs_notebooks = pytest.mark.skipif(not NOTEBOOK_PAGES, reason="no notebooks in _toc.yml yet")


@needs_notebooks
@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_launches_its_notebook_on_colab(site, page):
    anchors = parse(site / f"{page}.html").anchors
    launch = [a["href"] for a in anchors if a.get("title") == "Launch on Colab"]
    assert launch == [badge_url(ROOT / f"{page}.ipynb")], f"{page}: Colab button {launch}"


@needs_notebooks
@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_shows_the_stored_figures(site, page):
    nb = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    n_figures = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if any(k.startswith("image/") for k in out.get("data", {}))
    )
    html = site / f"{page}.html"
    images = [
        src
        for src in parse(html).images
        if src.startswith("data:image/")
        or is_local(src)
        and target_file(html, src).is_file()
        and "/_images/" in f"/{src}"
    ]
    assert len(images) >= n_figures, f"{page}: {n_figures} figure outputs, {len(images)} shown"
