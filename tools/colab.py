"""Each notebook's Colab cell: installs the series on Colab, does nothing anywhere else.

A learner who opens a notebook from GitHub in Colab gets the notebook file alone: no package, no
data code. So every notebook's first code cell checks whether it runs on Colab (``google.colab`` is
imported by Colab's kernel at start-up, and by nothing else) and, only there, clones this repository
and installs it. Elsewhere the cell does nothing, so JupyterLab, ``make test`` and papermill runs are
unaffected.

The repository's address is written in one place, ``[project.urls] Repository`` in
``pyproject.toml``; :func:`cell_source` renders the cell from it. ``python tools/colab.py`` writes
the cell into every notebook (inserting it after the title cell, or replacing the old one) and the
same code into the README's "Colab" section; ``--check`` lists disagreements and exits 1 if any
(``tests/test_colab.py`` runs it). A fork sets its own address in ``pyproject.toml`` and runs this
once. While the address is still the template's ``OWNER/NAME``, the cell stops on Colab with a
message saying what to set.

Usage: ``python tools/colab.py`` rewrites; ``python tools/colab.py --check`` only checks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import nbtools  # noqa: E402

PYPROJECT = nbtools.ROOT / "pyproject.toml"
README = nbtools.ROOT / "README.md"
#: The address a fresh template carries until its publisher sets the real one.
PLACEHOLDER = "https://github.com/OWNER/NAME"
#: The first line of the cell: how tools and tests recognise it.
MARKER = "# Colab only: fetch and install the series. Anywhere else this cell does nothing."
# Where Colab starts a notebook (its working folder); the clone goes there whatever the cell's
# current folder is, so running the cell twice neither clones twice nor nests a second copy.
CLONE_DIR = "/content/series"
_README_BLOCK = re.compile(r"(<!-- colab-cell -->\n```python\n)(.*?)(```)", re.S)


def repository() -> str:
    """``[project.urls] Repository`` from ``pyproject.toml``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    urls = tomllib.loads(PYPROJECT.read_text()).get("project", {}).get("urls", {})
    if "Repository" not in urls:
        raise SystemExit("pyproject.toml has no [project.urls] Repository; add the repository's GitHub address there")
    return urls["Repository"]


def cell_source(repo: str) -> str:
    """The Colab cell's code for the repository at ``repo`` (an ``https://github.com/OWNER/NAME`` address)."""
    return f'''{MARKER}
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO = "{repo}"
    if REPO.endswith("/OWNER/NAME"):  # the template's address, not yet set
        raise RuntimeError("This copy does not know its GitHub address: set REPO above to the address in "
                           "your Colab URL (github.com/OWNER/NAME), or set [project.urls] Repository in "
                           "pyproject.toml and run `python tools/colab.py`.")
    if not os.path.isdir("{CLONE_DIR}"):
        subprocess.run(["git", "clone", "-q", REPO, "{CLONE_DIR}"], check=True)
        # A plain install, not `pip install -e`: importable at once, where an editable one needs a
        # runtime restart. Colab's own PyTorch is kept (it satisfies the lower bounds).
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{CLONE_DIR}"], check=True)
    os.chdir("{CLONE_DIR}/notebooks")'''


def _colab_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith(MARKER)]


def problems() -> list[str]:
    """Every notebook whose Colab cell is missing, misplaced or stale, and a stale README block."""
    want = cell_source(repository())
    found = []
    for path in nbtools.notebooks():
        cells = _colab_cells(nbtools.read(path))
        if cells != [1]:
            found.append(f"{path.name}: the Colab cell should be cell 1 (right after the title), found at {cells}")
        elif nbtools.read(path).cells[1].source != want:
            found.append(f"{path.name}: the Colab cell differs from the one `python tools/colab.py` writes")
    block = _README_BLOCK.search(README.read_text())
    if not block or block.group(2) != want + "\n":
        found.append("README: the Colab section's code differs from the notebooks' Colab cell")
    return found


def write() -> None:
    """Put the current Colab cell into every notebook (and its text source) and the README."""
    want = cell_source(repository())
    for path in nbtools.notebooks():
        nb = nbtools.read(path)
        cells = _colab_cells(nb)
        for i in reversed(cells):
            del nb.cells[i]
        nb.cells.insert(1, nbtools.nbformat.v4.new_code_cell(want))
        nbtools.write(nb, path)
        nbtools.sync(path)
    text = README.read_text()
    if not _README_BLOCK.search(text):
        raise SystemExit("README.md has no '<!-- colab-cell -->' code block in its Colab section")
    README.write_text(_README_BLOCK.sub(lambda m: m.group(1) + want + "\n" + m.group(3), text))


def main(argv: list[str]) -> int:
    return nbtools.rewrite_or_check(argv, problems, write, current="every notebook's Colab cell is current", usage=__doc__)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
