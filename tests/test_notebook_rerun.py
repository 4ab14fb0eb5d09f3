"""Every notebook survives "run all" twice in one kernel, and its checked cells repeat their output.

Re-running cells is what learners do all day; a notebook whose second run fails or changes an exact
result teaches the wrong lesson. To keep the suite inside its budget this test may inject smaller
parameters (``tests/notebook_rerun_parameters.json``) through papermill: it checks re-run safety,
not results, so the text's claims (``checks.claim``) only warn here. nbval checks the defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import nbtools
from tutorial_lib.checks import CLAIMS_ENV

PARAMETERS = json.loads((Path(__file__).parent / "notebook_rerun_parameters.json").read_text())


def _checked_outputs(cells):
    sanitize = nbtools.sanitizer()
    out = []
    for cell in cells:
        if cell.cell_type == "code" and "nbval-check-output" in nbtools.tags(cell):
            texts = [o.get("text") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]
            out.append(sanitize("".join(texts)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", nbtools.notebooks(), ids=lambda p: p.name)
def test_notebook_runs_twice_in_one_kernel(path, monkeypatch):
    # The kernel inherits this: at the small parameters a claim of the text may not hold (checks.claim).
    monkeypatch.setenv(CLAIMS_ENV, "warn")
    nb = nbtools.read(path)
    nb = nbtools.inject_parameters(nb, PARAMETERS.get(path.name, {}))
    executed = nbtools.execute(nb, repeat=2)
    half = len(executed.cells) // 2
    first, second = executed.cells[:half], executed.cells[half:]
    assert _checked_outputs(first) == _checked_outputs(second), "an exactly-checked cell changed on re-run"
