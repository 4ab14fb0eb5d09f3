"""Notebook tooling shared by ``make notebooks`` and the notebook tests.

- :func:`execute` runs a notebook top to bottom in a fresh ``python3`` kernel (optionally with
  parameters injected the papermill way, optionally twice in the same kernel);
- :func:`clean` strips what changes from run to run without being content (widget state, timing
  metadata, the interpreter's patch version), so diffs show only real changes;
- :func:`violations` lists every way a committed notebook breaks the series' policy
  (CONTRIBUTING.md), including stored outputs that name the machine (:func:`machine_strings`:
  absolute paths, temporary folders, host name, kernel release) or hold one stream in pieces;
- :func:`parameter_problems` says where papermill's reading of the ``parameters`` cell differs from
  the cell itself, or the text names a knob the cell lacks;
- :func:`pairing_problems` says where a notebook and its jupytext text source
  (``notebooks/py/NN_topic.py``, percent format, configured in ``notebooks/jupytext.toml``) disagree.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

KERNEL_NAME = "python3"
NOTEBOOK_METADATA_KEYS = {"kernelspec", "language_info"}
CELL_METADATA_KEYS = {"tags", "jupyter"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
RAISES_TAGS = {"raises-exception", "nbval-raises-exception"}
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
#: Where the paired text sources live (``notebooks/jupytext.toml``: ``formats = "ipynb,py//py:percent"``).
TEXT_DIR = NOTEBOOK_DIR / "py"


def notebooks() -> list[Path]:
    """The series' notebooks, in syllabus order."""
    return sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if not p.name.startswith("."))


def text_source(path: Path) -> Path:
    """The jupytext pair of notebook ``path``: ``notebooks/py/NN_topic.py``."""
    return path.parent / "py" / (path.stem + ".py")


def _inputs(nb: Any) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def pairing_problems(path: Path) -> list[str]:
    """Where notebook ``path`` and its text source disagree (cell types, sources, tags); empty when in sync.

    The text file is what reviews and diffs read; the ``.ipynb`` is what learners open. Both must
    hold the same cells, so ``jupytext --sync`` (run by ``make notebooks``) must have nothing to do.
    """
    import jupytext

    pair = text_source(path)
    if not pair.exists():
        return [f"{path.name} has no text source py/{pair.name}; run `make sync`"]
    left, right = _inputs(read(path)), _inputs(jupytext.read(str(pair)))
    if len(left) != len(right):
        return [f"{path.name} has {len(left)} cells, {pair.name} has {len(right)}; run `make sync`"]
    return [
        f"cell {i} differs between {path.name} and py/{pair.name} ({kind}); run `make sync`"
        for i, (a, b) in enumerate(zip(left, right))
        for kind in [("type" if a[0] != b[0] else "source" if a[1] != b[1] else "tags")]
        if a != b
    ]


# Upper-case names a notebook's text may show in backticks without their being knobs of its parameters
# cell: nbgrader's solution markers, and the parameter of 00's two-cell papermill demo. Names the
# package defines (``OBJECT_SIZE_FRACTIONS``, the ``TUTORIAL_DEVICE`` variable) are allowed as well.
NOT_KNOBS = {"BEGIN", "END", "GREETING"}


def _package_names() -> set[str]:
    """Public upper-case names of ``tutorial_lib``'s modules, and the values of its ``*_ENV*`` constants."""
    import importlib

    import tutorial_lib

    names: set[str] = set()
    for module_name in tutorial_lib.MODULES:
        module = importlib.import_module(f"tutorial_lib.{module_name}")
        for name in getattr(module, "__all__", ()):
            if name.isupper():
                names.add(name)
                value = getattr(module, name)
                if "ENV" in name and isinstance(value, str):
                    names.add(value)
    return names


def parameter_problems(path: Path) -> list[str]:
    """Where papermill's view of a notebook's knobs differs from the notebook.

    papermill reads the ``parameters`` cell line by line with a regular expression, and drops, with
    only a log warning, a line it cannot parse (an ``=`` inside the comment is enough); such a knob
    is then missing from ``papermill --help-notebook`` and injecting it warns. This lists: each
    warning papermill logs, each name the cell assigns that papermill does not report, and each
    upper-case name the notebook's text shows in backticks (```NUM_TRAIN```) that is no knob.
    """
    import ast
    import logging

    import papermill

    nb = read(path)
    cells = [c for c in nb.cells if "parameters" in tags(c)]
    if len(cells) != 1:
        return [f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"]
    assigned = {t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}

    class _Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    handler = _Collect()
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    try:
        found = set(papermill.inspect_notebook(str(path)))
    finally:
        logger.removeHandler(handler)
    problems = [f"{path.name}: papermill warns: {message}" for message in handler.messages]
    problems += [f"{path.name}: papermill does not see the knob {name} (an '=' in its comment?)"
                 for name in sorted(assigned - found)]
    allowed = found | NOT_KNOBS | _package_names()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for name in sorted(set(re.findall(r"`([A-Z][A-Z0-9_]{2,})\b", cell.source)) - allowed):
                problems.append(f"{path.name}, cell {index}: the text names `{name}`, which is not in the parameters cell")
    return problems


def tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def clean(nb: Any) -> Any:
    """Remove volatile metadata and transient widget outputs, in place; returns ``nb``.

    Progress bars (``tqdm.auto``) render as ipywidgets whose ids change on every run and whose
    state lives outside the notebook; they are dropped from the stored outputs. Text output,
    figures and tables stay.
    """
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in NOTEBOOK_METADATA_KEYS}
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME}
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in CELL_METADATA_KEYS}
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_MIME in data:
                continue
            previous = kept[-1] if kept else None
            if (previous is not None and out.output_type == previous.output_type == "stream"
                    and out.get("name") == previous.get("name")):
                previous["text"] = previous["text"] + out["text"]   # one stream, stored in one piece
                continue
            kept.append(out)
        cell.outputs = kept
    return nb


# Stored outputs travel with the repository to every reader; what identifies the machine that ran
# them (a path under someone's home or a temporary folder, a host name, the kernel release) is noise
# to a learner and leaks the author's set-up. Each pattern names what it found, to point at the fix.
MACHINE_PATTERNS = [
    ("an absolute path", re.compile(r"(?<![\w.:/])/(?:work|tmp|home|Users|root|private|var/folders|mnt|scratch)/")),
    ("an absolute Windows path", re.compile(r"\b[A-Za-z]:\\[A-Za-z0-9_.$ -]")),
    ("a temporary folder", re.compile(r"\btmp[a-z0-9_]{8}\b|\\AppData\\Local\\Temp\b|\bpytest-of-\w")),
    ("a kernel release", re.compile(
        r"\b(?:Linux|Darwin|macOS|Windows)-\d+\.\d+"           # platform.platform(): Linux-6.1.0-...
        r"|\b\d+\.\d+\.\d+-\d*-?(?:generic|amd64|arm64|aws|azure|gcp|fc|el\d|microsoft)\w*"  # uname -r
        r"|\bDarwin Kernel Version\b|#\d+ SMP\b")),
]
#: Output MIME types read as text by the machine-string scan (images are skipped).
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")


def _host_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """This machine's host name and kernel release, as literal patterns (too short or generic ones skipped)."""
    import platform
    import socket

    found = []
    for what, value in (("the host name", socket.gethostname()), ("the host name", platform.node()),
                        ("the kernel release", platform.release())):
        value = (value or "").strip()
        if len(value) >= 6 and value.lower() not in {"localhost", "jupyter"}:
            found.append((what, re.compile(re.escape(value))))
    return found


def _output_texts(out: Any) -> list[str]:
    """The text an output shows a reader: stream text, text MIME data, error name, value and traceback."""
    if out.output_type == "stream":
        return [out.get("text", "")]
    if out.output_type == "error":
        return [out.get("ename", ""), out.get("evalue", ""), "\n".join(out.get("traceback", []))]
    data = out.get("data", {})
    texts = []
    for mime in TEXT_MIMES:
        value = data.get(mime)
        if value is None:
            continue
        texts.append(value if isinstance(value, str) else "".join(value) if isinstance(value, list) else str(value))
    return texts


def machine_strings(nb: Any, *, extra: list[tuple[str, re.Pattern[str]]] | None = None) -> list[str]:
    """Stored outputs that name the machine that ran them: absolute paths, temp folders, host, kernel.

    Args:
        nb: A notebook (``nbformat`` node).
        extra: More ``(what, pattern)`` pairs; by default this machine's host name and kernel release.

    Returns:
        One message per offending output: the cell index, what was found, and the matched text.
    """
    patterns = MACHINE_PATTERNS + (_host_patterns() if extra is None else extra)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            for text in _output_texts(out):
                for what, pattern in patterns:
                    match = pattern.search(text)
                    if match:
                        problems.append(f"cell {i}: a stored output shows {what} ({match.group(0)!r}); "
                                        "print a relative name or leave it out")
    return sorted(set(problems), key=problems.index)


def fragmented_streams(nb: Any) -> list[str]:
    """Cells whose output holds one stream split into several consecutive pieces (``print`` in a loop
    flushed part by part); :func:`clean` joins them."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.outputs
        for before, after in zip(outputs, outputs[1:]):
            if before.output_type == after.output_type == "stream" and before.get("name") == after.get("name"):
                problems.append(f"cell {i}: its {before.get('name')} is stored in pieces (run `make notebooks`)")
                break
    return problems


def violations(nb: Any) -> list[str]:
    """Every way ``nb`` breaks the committed-notebook policy; an empty list means it complies."""
    problems: list[str] = []
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL_NAME:
        problems.append(f"kernelspec is {kernel!r}, expected {KERNEL_NAME!r}")
    extra = set(nb.metadata) - NOTEBOOK_METADATA_KEYS
    if extra:
        problems.append(f"volatile notebook metadata {sorted(extra)} (run `make notebooks`)")
    counts = [c.execution_count for c in code_cells(nb) if c.source.strip()]
    if any(c is None for c in counts):
        problems.append("some code cells were never executed (run `make notebooks`)")
    elif counts != list(range(1, len(counts) + 1)):
        problems.append(f"execution counts are {counts}, not 1..{len(counts)} in order (run `make notebooks`)")
    parameter_cells = [c for c in nb.cells if "parameters" in tags(c)]
    if len(parameter_cells) != 1 or parameter_cells[0].cell_type != "code":
        problems.append(f"expected exactly one code cell tagged 'parameters', found {len(parameter_cells)}")
    for i, cell in enumerate(nb.cells):
        extra = set(cell.metadata) - CELL_METADATA_KEYS
        if extra:
            problems.append(f"cell {i}: volatile cell metadata {sorted(extra)} (run `make notebooks`)")
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "error" and not tags(cell) & RAISES_TAGS:
                problems.append(f"cell {i}: stored error output {out.ename}: {out.evalue}")
            if WIDGET_MIME in out.get("data", {}):
                problems.append(f"cell {i}: stored widget output (run `make notebooks`)")
        if tags(cell) & RAISES_TAGS and not any(o.output_type == "error" for o in cell.outputs):
            problems.append(f"cell {i}: tagged raises-exception but stores no error")
    problems += fragmented_streams(nb)
    problems += machine_strings(nb)
    return problems


def template_violations(nb: Any, name: str) -> list[str]:
    """Where ``nb`` departs from the notebook template of CONTRIBUTING.md (title, objectives, exercises, ending)."""
    problems: list[str] = []
    if not NOTEBOOK_NAME.match(name):
        problems.append(f"file name {name!r} is not NN_topic.ipynb")
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.lstrip().startswith("# "):
        problems.append("the first cell must be markdown starting with a '# ' title")
    else:
        intro = first.source.lower()
        for word in ("objectives", "prerequisites", "run time"):
            if word not in intro:
                problems.append(f"the first cell must state the {word}")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    for heading in ("summary", "quiz", "further reading"):
        if heading not in text:
            problems.append(f"no '{heading}' section")
    solutions = [c for c in code_cells(nb) if "### BEGIN SOLUTION" in c.source]
    if not name.startswith("00_") and len(solutions) < 2:
        problems.append(f"{len(solutions)} exercise(s) with '### BEGIN SOLUTION' markers; at least 2 expected")
    for c in solutions:
        if "### END SOLUTION" not in c.source:
            problems.append("an exercise opens '### BEGIN SOLUTION' without '### END SOLUTION'")
    return problems


def sanitizer(path: Path = ROOT / "tests" / "nbval_sanitize.cfg"):
    """The regex replacements nbval applies (``tests/nbval_sanitize.cfg``), as one function on text."""
    import configparser

    config = configparser.ConfigParser()
    config.read(path)
    rules = [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]

    def apply(text: str) -> str:
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text

    return apply


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    """Return a copy of ``nb`` with ``parameters`` injected after its ``parameters`` cell (papermill)."""
    from papermill.parameterize import parameterize_notebook

    nb = copy.deepcopy(nb)
    if not parameters:
        return nb
    for cell in nb.cells:  # papermill reads every cell's tags
        cell.metadata.setdefault("tags", [])
    nb.metadata.setdefault("papermill", {})
    return parameterize_notebook(nb, parameters, kernel_name=KERNEL_NAME, language="python")


def execute(nb: Any, *, cwd: Path = NOTEBOOK_DIR, timeout: int = 1800, repeat: int = 1) -> Any:
    """Execute ``nb`` in one fresh kernel, ``repeat`` times back to back; returns the executed copy.

    With ``repeat=2`` the cells are run twice in the same kernel ("run all" twice), which is how the
    tests check that every cell can be re-run. Cells tagged ``raises-exception`` may raise; any other
    error raises ``nbclient.exceptions.CellExecutionError``.
    """
    from nbclient import NotebookClient

    run = copy.deepcopy(nb)
    run.cells = [copy.deepcopy(c) for _ in range(repeat) for c in nb.cells]
    client = NotebookClient(run, timeout=timeout, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return run


def sync(path: Path) -> None:
    """``jupytext --sync path``: bring a notebook and its text source to the same cells (the newer wins)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(path)], check=True)


def read(path: Path) -> Any:
    return nbformat.read(str(path), as_version=4)


def write(nb: Any, path: Path) -> None:
    nbformat.validate(nb)
    nbformat.write(nb, str(path))


def rewrite_or_check(argv: list[str], problems: Any, write: Any, *, current: str, usage: str) -> int:
    """The command line of a tool that keeps generated text in step with its source.

    ``[]`` calls ``write()``; ``["--check"]`` prints ``problems()`` (or ``current`` when there are
    none) and returns 1 if any; anything else prints ``usage`` and returns 2.
    """
    import sys

    if argv == ["--check"]:
        found = problems()
        print("\n".join(found) or current)
        return 1 if found else 0
    if argv:
        print(usage, file=sys.stderr)
        return 2
    write()
    return 0
