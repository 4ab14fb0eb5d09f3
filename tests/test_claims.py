"""Words follow numbers: a number in a notebook's prose is printed by the notebook or cites its source.

``tools/claims.py`` finds the numbers; these tests show it finds what it should (and only that), and
hold the committed notebooks to it.
"""

from __future__ import annotations

import nbformat
import pytest

from tools import claims, nbtools


@pytest.mark.parametrize("path", nbtools.notebooks(), ids=lambda p: p.name)
def test_every_number_in_the_prose_is_printed_or_cited(path):
    found = claims.unbacked_numbers(nbtools.read(path))
    assert not found, f"{path.name}: numbers that neither an output nor a citation backs:\n" + "\n".join(found)


def _notebook(markdown: str, printed: str = "", code: str = "x = 1") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), cell]
    return nb


@pytest.mark.parametrize(("markdown", "printed"), [
    ("The residual network reaches 77% on the test split.", "accuracy 0.7712"),
    ("It reaches 77.1% on the test split.", "accuracy 0.7712"),
    ("It reaches 0.77 on the test split.", "accuracy 0.7712"),
    ("The stem has 9,408 parameters.", "stem: 9408 parameters"),
    ("ResNet-101 reaches 77.4% top-1 (He et al. 2016, Table 3).", ""),
    ("Wightman, Touvron & Jégou (2021) report 80.4% top-1.", ""),
    ("He et al.'s \"Bag of Tricks\" (2019) took ResNet-50 to 79.29%.", ""),
    ("Three seeds, 2 blocks, in 2016, as notebook 07 showed.", ""),
    ("ResNet-152 and Res2Net-50 at v1.5 with 3x3 convolutions.", ""),
    ("The parameter `WIDTH = 64` and the equation $y = 0.5x$ hold no claims.", ""),
    ("### 6.3 A heading number", ""),
    ("Records are in benchmarks/results/cpu_recipes.json: 94.3% on test.", ""),
    ("The pool adds about 116 million MACs.", "115,605,504 MACs"),
    ("The released model has 25.70 M parameters ([the authors' page](https://github.com/x/y)).", ""),
    ("Level on validation (0.9765 against 0.9755, `benchmarks/results/cpu_recipes.json`).", ""),
    ("ResNet-101 has 44.5 million parameters (notebook 04 counts them).", ""),
])
def test_backed_numbers_pass(markdown, printed):
    assert claims.unbacked_numbers(_notebook(markdown, printed)) == []


@pytest.mark.parametrize(("markdown", "printed", "flagged"), [
    ("The residual network reaches 81% on the test split.", "accuracy 0.7712", "81%"),
    ("It reaches 77.9% on the test split.", "accuracy 0.7712", "77.9%"),
    ("Training took 176 seconds.", "took 90 s", "176"),
    ("104 BatchNorm layers hold 0.24% of the values.", "", "0.24%"),
    ("Goyal et al. used 8,192 images per batch.", "", "8,192"),
    ("Training took 176 s (see [the table](table.md)).", "", "176"),  # a citation names its year
    ("The pool adds about 118 million MACs.", "115,605,504 MACs", "118"),
])
def test_unbacked_numbers_are_found(markdown, printed, flagged):
    found = claims.unbacked_numbers(_notebook(markdown, printed))
    assert any(f": {flagged} in " in line for line in found), found
    assert all(line.startswith("cell 0: ") for line in found)


def test_a_number_the_code_sets_is_no_claim():
    nb = _notebook("The network is trained for 176 steps.", code="STEPS = 176")
    assert claims.unbacked_numbers(nb) == []
