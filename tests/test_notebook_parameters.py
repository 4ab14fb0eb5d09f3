"""papermill sees every knob of every notebook, and the text names no knob the parameters cell lacks."""

from __future__ import annotations

import nbformat
import pytest

from tools import nbtools

NOTEBOOKS = nbtools.notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_knob(path):
    problems = nbtools.parameter_problems(path)
    assert not problems, "\n".join(problems)


def _write(tmp_path, parameters: str, text: str = "# T"):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_markdown_cell(text),
                nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    path = tmp_path / "00_t.ipynb"
    nbformat.write(nb, path)
    return path


def test_checker_accepts_comments_without_equals_signs(tmp_path):
    path = _write(tmp_path, "SIZE = 56   # side in pixels (56 is layer1's size)\nLR = 0.1", "Change `SIZE` or `LR`.")
    assert nbtools.parameter_problems(path) == []


def test_checker_catches_a_knob_papermill_drops(tmp_path):
    problems = nbtools.parameter_problems(_write(tmp_path, "SIZE = 56   # (56 = layer1's size)\nLR = 0.1"))
    assert any("papermill warns" in p and "SIZE" in p for p in problems)
    assert any("does not see the knob SIZE" in p for p in problems)


def test_checker_catches_text_naming_a_missing_knob(tmp_path):
    problems = nbtools.parameter_problems(_write(tmp_path, "LR = 0.1", "Set `EPOCHS` to 10 for a longer run."))
    assert problems == ["00_t.ipynb, cell 0: the text names `EPOCHS`, which is not in the parameters cell"]


def test_checker_allows_the_package_constants_and_solution_markers(tmp_path):
    text = "`OBJECT_SIZE_FRACTIONS`, `TUTORIAL_DEVICE`, `### BEGIN SOLUTION` and `### END SOLUTION`"
    assert nbtools.parameter_problems(_write(tmp_path, "LR = 0.1", text)) == []
