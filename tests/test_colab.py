"""Each notebook's Colab cell: current everywhere, silent off Colab, and on Colab it installs the series.

The cell cannot be run on Colab here, so the tests run its code with a stand-in ``google.colab``
module in ``sys.modules`` (the one thing the cell looks at) and record what it would run instead of
running it.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from tools import colab, nbtools

FORK = "https://github.com/jane/msresnet"


def test_every_notebook_and_the_readme_carry_the_current_colab_cell():
    found = colab.problems()
    assert not found, "\n".join(found) + "\nrun `python tools/colab.py`"


def test_the_check_notices_a_changed_repository_address(monkeypatch):
    """A fork that sets its address in pyproject.toml but forgets to rewrite the cells is told so."""
    monkeypatch.setattr(colab, "repository", lambda: FORK)
    found = colab.problems()
    assert len(found) == len(nbtools.notebooks()) + 1, found


def _run_cell(source: str, monkeypatch, *, on_colab: bool, clone_exists: bool = False) -> list:
    """Execute the cell's code; returns the calls it made (subprocess commands and folder changes)."""
    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(("run", cmd, kw)))
    monkeypatch.setattr("os.chdir", lambda path: calls.append(("chdir", path)))
    monkeypatch.setattr("os.path.isdir", lambda path: clone_exists if path == colab.CLONE_DIR else False)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<colab cell>", "exec"), {})
    return calls


def test_the_cell_does_nothing_off_colab(monkeypatch):
    source = nbtools.read(nbtools.notebooks()[0]).cells[1].source
    assert _run_cell(source, monkeypatch, on_colab=False) == []


def test_on_colab_the_cell_clones_installs_and_moves_to_the_notebooks(monkeypatch):
    calls = _run_cell(colab.cell_source(FORK), monkeypatch, on_colab=True)
    assert [c[0] for c in calls] == ["run", "run", "chdir"]
    assert calls[0][1] == ["git", "clone", "-q", FORK, colab.CLONE_DIR]
    # A plain install into the running kernel's interpreter: `pip install -e` would need a restart.
    assert calls[1][1] == [sys.executable, "-m", "pip", "install", "-q", colab.CLONE_DIR]
    assert all(c[2].get("check") for c in calls[:2]), "a failed clone or install must stop the cell"
    assert calls[2] == ("chdir", colab.CLONE_DIR + "/notebooks")


def test_on_colab_a_second_run_does_not_clone_again(monkeypatch):
    calls = _run_cell(colab.cell_source(FORK), monkeypatch, on_colab=True, clone_exists=True)
    assert calls == [("chdir", colab.CLONE_DIR + "/notebooks")]


def test_on_colab_the_template_address_stops_with_what_to_set(monkeypatch):
    with pytest.raises(RuntimeError, match=r"set REPO above.*\[project.urls\] Repository"):
        _run_cell(colab.cell_source(colab.PLACEHOLDER), monkeypatch, on_colab=True)


def test_the_site_links_colab_to_the_repository_only_once_it_is_set(monkeypatch):
    from tools import site

    monkeypatch.setattr(colab, "repository", lambda: colab.PLACEHOLDER)
    assert site._default_repo() is None
    monkeypatch.setattr(colab, "repository", lambda: FORK + "/")
    assert site._default_repo() == "jane/msresnet"
