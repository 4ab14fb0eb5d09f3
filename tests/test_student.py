"""Student copies work as a class needs them: the stub fails its check with a hint, the solution passes.

For each notebook, ``tools/student.py`` makes the student copy (nbgrader's ``ClearSolutions``), and
one kernel runs it from the top to its last check cell, at the small parameters of
``tests/notebook_rerun_parameters.json`` (this tests the mechanics of the copy, not results, so the
text's claims only warn: ``TUTORIAL_CLAIMS=warn``). Along the way:

- every cell before the first exercise, and every cell between exercises, runs without error;
- each exercise cell, as the learner receives it, raises ``NotImplementedError`` (nbgrader's stub),
  or, when the stub sits in a function body that the cell only defines, raises nothing;
- its check cell then fails with an ``AssertionError`` whose message helps (not a ``NameError``
  because the stub left a name undefined, not a bare ``AssertionError`` without words);
- an empty answer (the solution region replaced by ``pass``, with each name the solution assigns at
  the cell's top level set to ``None``) also fails the check: a check that passes an empty answer
  checks nothing;
- the instructor's solution, run in the same kernel, passes the same check cell.

The cells after the last check (summary, quiz) are not run here; nbval and the re-run test run them.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tools import nbtools, student
from tutorial_lib.checks import CLAIMS_ENV

PARAMETERS = json.loads((Path(__file__).parent / "notebook_rerun_parameters.json").read_text())
NOTEBOOKS = nbtools.notebooks()
#: A hint says what to do: a few words at least (a bare ``assert`` has none).
MIN_HINT_CHARS = 20
NO_NBGRADER = "nbgrader is not installed: pip install -e '.[classroom]' (make test and make student install it)"


def _solution_region(source: str) -> tuple[int, int, str]:
    """(first line index, last line index, indentation) of the ``### BEGIN/END SOLUTION`` region of ``source``."""
    lines = source.split("\n")
    begin = next(i for i, line in enumerate(lines) if student.BEGIN in line)
    end = next(i for i, line in enumerate(lines) if student.END in line and i > begin)
    return begin, end, re.match(r"\s*", lines[begin]).group(0)


def _in_function(source: str) -> bool:
    """Whether the solution region of ``source`` sits in a function body (it then runs only when the function is called)."""
    lines = source.split("\n")
    begin, _, indent = _solution_region(source)
    for line in reversed(lines[:begin]):
        stripped = line.lstrip()
        if stripped and len(line) - len(stripped) < len(indent):
            if stripped.startswith(("def ", "async def ")):
                return True
            indent = line[: len(line) - len(stripped)]
    return False


def empty_answer(source: str) -> str:
    """The exercise cell ``source`` with an empty answer: ``pass``, and ``None`` for each top-level name the solution sets."""
    lines = source.split("\n")
    begin, end, indent = _solution_region(source)
    names: list[str] = []
    if not _in_function(source):  # a solution outside a function sets names the check cell reads
        todo = list(ast.parse(textwrap.dedent("\n".join(lines[begin + 1:end]))).body)
        while todo:  # statements outside function and class bodies (a `with` or `if` block's included)
            node = todo.pop(0)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            todo += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
    body = [f"{indent}pass"] + [f"{indent}{name} = None" for name in dict.fromkeys(names)]
    return "\n".join(lines[:begin] + body + lines[end + 1:])


def _error(cell: Any) -> tuple[str, str] | None:
    """(ename, evalue) of the error ``cell`` stored when it ran, or None."""
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return out.ename, out.evalue
    return None


def _text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def _helpful_failure(error: tuple[str, str] | None, what: str) -> str | None:
    """None if ``error`` is a check's hint; otherwise what is wrong with it (the test's failure message)."""
    if error is None:
        return f"the check passed on {what}: it checks nothing there"
    ename, evalue = error
    if ename == "NameError":
        return (f"the check cell raised NameError ({evalue}) on {what}: the stub leaves the name undefined. Define it above "
                f"`{student.BEGIN}` (e.g. `name = None`), so the copy's check gets a value and can say what is missing")
    if ename != "AssertionError":
        return f"the check cell raised {ename}: {evalue} on {what}; a check should raise AssertionError with a hint"
    if len(evalue.strip()) < MIN_HINT_CHARS:
        return f"the check failed on {what} with a bare AssertionError ({evalue!r}); give the learner a hint"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_fails_each_check_with_a_hint_and_the_solution_passes(path: Path, monkeypatch) -> None:
    from nbclient import NotebookClient

    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    monkeypatch.setenv(CLAIMS_ENV, "warn")  # the kernel inherits it: small parameters, claims only warn
    instructor = nbtools.inject_parameters(nbtools.read(path), PARAMETERS.get(path.name, {}))
    exercises = student.exercises(instructor)
    if not exercises:
        pytest.skip(f"{path.name} has no exercise")
    copy = student.student_copy(instructor)
    by_cell = {e.cell: e for e in exercises}
    checks = {e.check for e in exercises}

    problems: list[str] = []
    client = NotebookClient(copy, timeout=900, kernel_name=nbtools.KERNEL_NAME, allow_errors=True,
                            resources={"metadata": {"path": str(nbtools.NOTEBOOK_DIR)}})
    start = time.perf_counter()
    with client.setup_kernel():
        def run(source: str, index: int) -> Any:
            cell = nbformat.v4.new_code_cell(source)
            client.execute_cell(cell, index)
            return cell

        for index, cell in enumerate(copy.cells[: exercises[-1].check + 1]):
            if cell.cell_type != "code" or index in checks:
                continue
            if index not in by_cell:
                ran = run(cell.source, index)
                if _error(ran) and not nbtools.tags(cell) & nbtools.RAISES_TAGS:
                    problems.append(f"cell {index} (not an exercise) failed: {_error(ran)}")
                continue
            exercise, label = by_cell[index], f"exercise in cell {index}"
            stub = _error(run(cell.source, index))
            # A stub inside a function body runs only when the function is called (by the cell or the check).
            in_function = _in_function(instructor.cells[index].source)
            if (stub is None and not in_function) or (stub is not None and stub[0] != "NotImplementedError"):
                problems.append(f"{label}: the student's stub should raise NotImplementedError, got {stub}")
            check_source = copy.cells[exercise.check].source
            for answer, what in ((None, "the unanswered stub"), (empty_answer(instructor.cells[index].source), "an empty answer")):
                if answer is not None:
                    run(answer, index)
                found = _helpful_failure(_error(run(check_source, exercise.check)), what)
                if found:
                    problems.append(f"{label}, check cell {exercise.check}: {found}")
            solved = run(instructor.cells[index].source, index)
            checked = run(check_source, exercise.check)
            if _error(solved) or _error(checked):
                problems.append(f"{label}: the instructor's solution does not pass its check: {_error(solved) or _error(checked)}")
            elif "Correct" not in _text(checked) and "equal" not in _text(checked).lower():
                problems.append(f"{label}: the check passed the solution without saying so: {_text(checked)!r}")
    print(f"{path.name}: {len(exercises)} exercise(s), {time.perf_counter() - start:.0f} s")
    assert not problems, f"{path.name}:\n- " + "\n- ".join(problems)


def test_student_copy_keeps_everything_but_solutions_and_exercise_outputs() -> None:
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    path = next(p for p in NOTEBOOKS if student.exercises(nbtools.read(p)))
    nb = nbtools.read(path)
    copy = student.student_copy(nb)
    assert [c.cell_type for c in copy.cells] == [c.cell_type for c in nb.cells]
    touched = {i for e in student.exercises(nb) for i in (e.cell, e.check)}
    for index, (mine, theirs) in enumerate(zip(copy.cells, nb.cells)):
        if index in touched:
            assert student.BEGIN not in mine.source and student.END not in mine.source
            assert mine.outputs == [] and mine.execution_count is None
        else:
            assert mine == theirs, f"cell {index} changed in the student copy"
    assert nb == nbtools.read(path), "making the copy changed the instructor notebook"


def test_clear_solutions_keeps_indentation_and_leaves_prose_alone() -> None:
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("The solution sits between the `BEGIN SOLUTION` and\n`END SOLUTION` markers."),
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\nprint(1)"),
        nbformat.v4.new_code_cell("check(f)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    copy = student.student_copy(nb)
    assert copy.cells[0].source == nb.cells[0].source
    assert copy.cells[1].source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(1)"
    assert student.exercises(nb) == [student.Exercise(1, 2)]


def test_empty_answer_sets_the_solutions_names_to_none() -> None:
    source = "x = 1\n### BEGIN SOLUTION\nscale, shift = 2, 3\nbudget: int = 4\n### END SOLUTION\nprint(scale)"
    assert empty_answer(source) == "x = 1\npass\nscale = None\nshift = None\nbudget = None\nprint(scale)"
    assert empty_answer("def f():\n    ### BEGIN SOLUTION\n    y = 1\n    ### END SOLUTION") == "def f():\n    pass"
    with_block = "with torch.no_grad():\n    ### BEGIN SOLUTION\n    scale = 2\n    ### END SOLUTION"
    assert empty_answer(with_block) == "with torch.no_grad():\n    pass\n    scale = None"
    top_with = "### BEGIN SOLUTION\nwith torch.no_grad():\n    scale = 2\ndef f():\n    y = 1\n### END SOLUTION"
    assert empty_answer(top_with) == "pass\nf = None\nscale = None"
    assert not _in_function(with_block) and _in_function("def f():\n    if True:\n        ### BEGIN SOLUTION\n        ### END SOLUTION")


def test_make_student_writes_every_notebook(tmp_path) -> None:
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    import subprocess
    import sys

    out = tmp_path / "student"
    done = subprocess.run([sys.executable, "tools/student.py", "--out", str(out)], cwd=nbtools.ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for path in out.glob("*.ipynb"):
        assert student.BEGIN not in path.read_text()


def test_instructor_guide_is_generated_from_the_current_notebooks() -> None:
    from tools import instructors

    text = instructors.GUIDE.read_text()
    assert instructors.render(text) == text, "docs/instructors.md is out of date: run `python tools/instructors.py`"
    for path in NOTEBOOKS:
        count = len(student.exercises(nbtools.read(path)))
        assert f"Notebook: [`{path.name}`]" in text and f"**Exercises ({count}).**" in text
