"""JupyterLab in a real browser: `make lab` serves the series and 00_setup runs with no error.

Starts the same server command as `make lab` (with headless flags) on a free loopback port, opens
``00_setup.ipynb`` in Debian's Chromium driven by Playwright, runs all cells through JupyterLab's own
"Run All Cells" command, checks every code cell ran and none shows an error, and saves a screenshot
under ``tests/artifacts/`` (git-ignored). Playwright's own browser download cannot work offline, so
the test uses the system Chromium and skips with the reason when it is absent.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`make lab` exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


@pytest.fixture()
def lab_server():
    port, token = _free_port(), secrets.token_hex(16)
    args = (
        f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
        f"--IdentityProvider.token={token} --LabApp.expose_app_in_browser=True"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "lab.log", "w")
    proc = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc)
        yield base, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


RUN_ALL = """async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  await app.commands.execute('notebook:run-all-cells');
  const cells = [];
  for (const cell of panel.content.model.cells) {
    if (cell.type !== 'code') continue;
    cells.push({count: cell.executionCount, outputs: cell.outputs.toJSON().map(o => o.output_type + ':' + (o.ename || ''))});
  }
  return cells;
}"""


def test_jupyterlab_runs_setup_notebook_without_errors(lab_server):
    from playwright.sync_api import sync_playwright

    base, token = lab_server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/00_setup.ipynb?token={token}")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.content"
                " && window.jupyterapp.shell.currentWidget.content.model",
                timeout=120_000,
            )
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.set_default_timeout(600_000)
            cells = page.evaluate(RUN_ALL)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "00_setup_in_jupyterlab.png"), full_page=False)
        finally:
            browser.close()
    assert cells, "the notebook showed no code cells"
    never_ran = [i for i, c in enumerate(cells) if c["count"] is None]
    assert not never_ran, f"code cells {never_ran} did not run"
    errors = [(i, o) for i, c in enumerate(cells) for o in c["outputs"] if o.startswith("error")]
    assert not errors, f"cells showed errors: {errors}"
