"""Student copies of the notebooks: solutions replaced by nbgrader's stub (what ``make student`` runs).

Usage: ``python tools/student.py [--out student] [notebooks/NN_topic.ipynb ...]`` writes
``student/NN_topic.ipynb`` for every notebook (or the ones named).

The solution of each exercise sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines
(nbgrader's convention). nbgrader's own ``ClearSolutions`` preprocessor replaces each such region by
its stub, ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, indented like the region. It works
on the markers alone: no nbgrader database, course directory or cell metadata is needed
(``enforce_metadata=False``; the series' notebooks carry only ``tags`` as cell metadata, see
``tools/nbtools.py``). Two settings keep it to the exercises:

- the delimiters include the ``### `` comment mark, so prose that merely names the markers is no match;
- markdown cells are left as they are (the series has no written-answer regions; a markdown cell
  that shows the markers in an example stays readable).

The outputs and execution counts of each exercise cell and of the check cell after it (the next code
cell) are cleared, so the learner does not see the answer's printout or a "Correct" line; every other
cell keeps its stored outputs and figures, as the learner should see them.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import nbtools  # noqa: E402

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
#: nbgrader's Python stub (``ClearSolutions.code_stub["python"]``), line by line.
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError()")
DEFAULT_OUT = nbtools.ROOT / "student"


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: the cell to complete and the check cell after it (cell indices)."""

    cell: int
    check: int


def exercises(nb: Any) -> list[Exercise]:
    """The exercises of ``nb``, in order: each code cell with a ``### BEGIN SOLUTION`` line, and its check cell.

    The check cell is the next code cell; the series' template (CONTRIBUTING.md) puts it right after
    the exercise.

    Raises:
        ValueError: if an exercise cell has no code cell after it.
    """
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and BEGIN in cell.source:
            following = [j for j in range(index + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"]
            if not following:
                raise ValueError(f"the exercise in cell {index} has no check cell after it; add one (checks.check_...)")
            found.append(Exercise(index, following[0]))
    return found


def _clear_solutions() -> Any:
    """nbgrader's ``ClearSolutions``, set to work on the markers alone and on code cells only."""
    from nbgrader.preprocessors import ClearSolutions

    class CodeOnlyClearSolutions(ClearSolutions):  # markdown may show the markers as an example
        def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
            if cell.cell_type != "code":
                return cell, resources
            return super().preprocess_cell(cell, resources, cell_index)

    return CodeOnlyClearSolutions(
        enforce_metadata=False, begin_solution_delimeter=BEGIN, end_solution_delimeter=END,
        code_stub={"python": "\n".join(STUB_LINES)},
    )


def student_copy(nb: Any) -> Any:
    """Return the student copy of notebook ``nb`` (``nb`` itself is left unchanged).

    Args:
        nb: an instructor notebook (``nbformat.NotebookNode``) with solutions between the markers.

    Returns:
        A copy with each solution region replaced by nbgrader's stub and the outputs of exercise
        and check cells cleared.
    """
    student = copy.deepcopy(nb)
    marked = exercises(student)
    student, _ = _clear_solutions().preprocess(student, {})
    for exercise in marked:
        for index in (exercise.cell, exercise.check):
            student.cells[index].outputs = []
            student.cells[index].execution_count = None
    return student


def write_student_copies(paths: list[Path], out: Path = DEFAULT_OUT) -> list[Path]:
    """Write the student copy of each notebook in ``paths`` to ``out/NAME.ipynb``; returns the written paths.

    Args:
        paths: instructor notebooks, e.g. ``nbtools.notebooks()``.
        out: the folder to write to (created if missing).
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        target = out / path.name
        nbtools.write(student_copy(nbtools.read(path)), target)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the student copies (default: student/)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="instructor notebooks (default: all of notebooks/)")
    args = parser.parse_args(argv)
    paths = args.notebooks or nbtools.notebooks()
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    for source, target in zip(paths, write_student_copies(paths, args.out)):
        print(f"{target}: {len(exercises(nbtools.read(source)))} exercise(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
