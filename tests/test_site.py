"""`make site` builds a website that works: every page loads cleanly, every image and internal link resolves.

Builds the site (``tools/site.py``) into a temporary folder, serves it on a loopback port and opens
every page in the headless Chromium that ``tests/test_browser.py`` uses (Debian's, driven by
Playwright; it skips with the reason when Chromium is absent). On each page: no console error, no
uncaught exception, no failed request; every image decodes; every internal link (and its ``#anchor``)
resolves; math is typeset where the page has some. Each notebook page carries the box that links to
its ``.ipynb`` and says how to open it in JupyterLab and Colab. A screenshot of one notebook page's
figure (saved under ``tests/artifacts/``) must show that figure: it is compared with the PNG the
notebook stores.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import shutil
import socketserver
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tools import nbtools

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
]

PAGE_FACTS = """async () => {
  for (const img of document.images) img.loading = 'eager';
  const broken = [];
  for (const img of Array.from(document.images)) {
    try { await img.decode(); } catch (e) { broken.push(img.currentSrc || img.src); }
    if (img.naturalWidth === 0 && !broken.includes(img.src)) broken.push(img.src);
  }
  return {
    broken,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
    math: document.querySelectorAll('span.math, div.math').length,
    typeset: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML, .MathJax_SVG, mjx-container').length,
    openBox: Array.from(document.querySelectorAll('.open-notebook')).map(e => ({
      text: e.innerText, ipynb: Array.from(e.querySelectorAll('a[href$=".ipynb"]')).map(a => a.href)})),
  };
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test's output to its findings
        pass

    def do_GET(self) -> None:
        # Chromium asks every site for /favicon.ico on its own; the site has none, and that 404 is no page's fault.
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx_book_theme", reason="the classroom extra is not installed: pip install -e '.[classroom]'")
    from tools import site as site_tool

    out = site_tool.build(tmp_path_factory.mktemp("site") / "html")
    handler = functools.partial(_QuietHandler, directory=str(out))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield out, f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


def _pages(out: Path) -> list[str]:
    """Every HTML page of the site, as paths relative to its root (the theme's assets excluded)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.html") if not p.relative_to(out).parts[0].startswith("_"))


def _first_figure(nb_path: Path) -> bytes | None:
    """The PNG bytes of the first figure notebook ``nb_path`` stores (the page's first output image)."""
    for cell in nbtools.read(nb_path).cells:
        for out in cell.get("outputs", []):
            if "image/png" in out.get("data", {}):
                return base64.b64decode(out["data"]["image/png"])
    return None


def test_site_pages_load_cleanly_with_images_links_math_and_the_open_box(site) -> None:
    from playwright.sync_api import sync_playwright

    out, base = site
    pages = _pages(out)
    notebooks = nbtools.notebooks()
    assert {f"notebooks/{p.stem}.html" for p in notebooks} <= set(pages), "a notebook has no page"
    assert "index.html" in pages and "docs/instructors.html" in pages

    problems: list[str] = []
    facts: dict[str, dict] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            events: list[str] = []
            page.on("console", lambda m: events.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: events.append(f"uncaught: {e}"))
            page.on("requestfailed", lambda r: events.append(f"request failed: {r.url} ({r.failure})"))
            page.on("response", lambda r: events.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            for name in pages:
                events.clear()
                page.goto(base + name, wait_until="load")
                page.wait_for_function(
                    "() => !document.querySelector('span.math, div.math')"
                    " || document.querySelector('.MathJax, .MathJax_Display, .MathJax_CHTML, .MathJax_SVG, mjx-container')",
                    timeout=60_000)
                facts[name] = page.evaluate(PAGE_FACTS)
                page.wait_for_timeout(200)
                problems += [f"{name}: {e}" for e in events]
                problems += [f"{name}: image does not load: {src}" for src in facts[name]["broken"]]
                if facts[name]["math"] and not facts[name]["typeset"]:
                    problems.append(f"{name}: math is not typeset")

            # The screenshot: a notebook page's first figure, compared with the PNG the notebook stores.
            shot = next(((nb, fig) for nb in notebooks if (fig := _first_figure(nb))), None)
            assert shot, "no notebook stores a figure"
            nb, png = shot
            page.goto(base + f"notebooks/{nb.stem}.html", wait_until="load")
            figure = page.locator(".cell_output img").first
            figure.scroll_into_view_if_needed()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"site_{nb.stem}.png"))
            taken = figure.screenshot()
        finally:
            browser.close()

    for name, fact in facts.items():
        for link in fact["links"]:
            if not link.startswith(base):
                continue
            url, _, anchor = link.partition("#")
            target = urllib.parse.unquote(url[len(base):]) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (out / target).is_file():
                problems.append(f"{name}: link to a missing file: {link}")
            elif anchor and target in facts and urllib.parse.unquote(anchor) not in facts[target]["ids"]:
                problems.append(f"{name}: link to a missing anchor: {link}")
    for nb in notebooks:
        boxes = facts[f"notebooks/{nb.stem}.html"]["openBox"]
        if not boxes or not any(a.endswith(f"/{nb.name}") for box in boxes for a in box["ipynb"]) or not all(
                word in boxes[0]["text"] for word in ("JupyterLab", "Colab")):
            problems.append(f"notebooks/{nb.stem}.html: no box linking to {nb.name} that says how to open it in JupyterLab and Colab")
    assert not problems, "\n".join(problems)

    import numpy as np
    from PIL import Image

    seen = np.asarray(Image.open(io.BytesIO(taken)).convert("L"), dtype=float)
    stored = np.asarray(Image.open(io.BytesIO(png)).convert("L").resize(seen.shape[::-1]), dtype=float)
    assert seen.std() > 10, f"the screenshot of {nb.name}'s figure is blank"
    difference = np.abs(seen - stored).mean()
    assert difference < 12, f"the screenshot of {nb.name}'s first figure differs from the stored PNG (mean |diff| {difference:.1f} of 255)"


def test_open_box_links_colab_to_the_given_repository() -> None:
    from tools import site as site_tool

    box = site_tool.open_box("02_residual_blocks.ipynb", "jane/msresnet")
    assert "https://colab.research.google.com/github/jane/msresnet/blob/main/notebooks/02_residual_blocks.ipynb" in box
    assert "</_ipynb/02_residual_blocks.ipynb>" in box and "make lab" in box
    assert "File → Upload notebook" in site_tool.open_box("02_residual_blocks.ipynb", None)
