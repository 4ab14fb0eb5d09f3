"""Each notebook's measured run time: recorded by ``make notebooks``, quoted by the README and the notebook.

One measurement, three places that state it: ``benchmarks/results/notebook_run_times.json`` holds the
seconds ``make notebooks`` measured for each notebook and the machine it ran on; the README's
syllabus table and each notebook's first cell quote them, rounded by :func:`phrase`. ``make
notebooks`` records a notebook's time and rewrites both quotes (:func:`record`, :func:`write`), so a
re-run never leaves an old time in the text; ``tests/test_run_times.py`` fails when a quote and the
record disagree.

Usage: ``python tools/run_times.py`` rewrites the quotes from the record (after editing the
record by hand, say); ``python tools/run_times.py --check`` lists disagreements and exits 1 if any.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import nbtools  # noqa: E402

RECORD = nbtools.ROOT / "benchmarks" / "results" / "notebook_run_times.json"
README = nbtools.ROOT / "README.md"
# The notebook's first cell states its run time on one line starting with this.
FIRST_CELL_PREFIX = "**Run time:** "
_FIRST_CELL_LINE = re.compile(r"^\*\*Run time:\*\* .*$", re.MULTILINE)
# The README states the machine on one line starting with this, above the syllabus table.
README_MACHINE_PREFIX = "Run times are measured by `make notebooks` "
_README_MACHINE_LINE = re.compile(r"^Run times are measured by `make notebooks` .*$", re.MULTILINE)


def phrase(seconds: float) -> str:
    """How the text states a run time: 'under 1 min', then whole minutes ('about 7 min')."""
    if seconds < 60:
        return "under 1 min"
    return f"about {int(seconds / 60 + 0.5)} min"


def machine() -> str:
    """This machine in a few words: cores, CPU, and the precision the recipes train in here."""
    import torch

    from tutorial_lib.env import supports_bf16

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    precision = "bfloat16" if supports_bf16(torch.device("cpu")) else "float32"
    return f"{cores}-core {cpu}, no GPU, training in {precision}, torch {torch.__version__.split('+')[0]}"


def load() -> dict[str, Any]:
    """The record: ``{"machine": str, "seconds": {notebook file name: seconds}}``."""
    if not RECORD.exists():
        return {"machine": "", "seconds": {}}
    return json.loads(RECORD.read_text())


def record(name: str, seconds: float) -> None:
    """Store one notebook's measured run time, with this machine's description.

    Times measured on different machines cannot share one table: a notebook measured on another
    machine than the record's clears the others' times (``make notebooks`` then measures them).
    """
    data = load()
    here = machine()
    if data["machine"] != here:
        data = {"machine": here, "seconds": {}}
    data["seconds"][name] = round(seconds, 1)
    data["seconds"] = dict(sorted(data["seconds"].items()))
    RECORD.write_text(json.dumps(data, indent=2) + "\n")


def first_cell_line(name: str, data: dict[str, Any]) -> str:
    return (f"{FIRST_CELL_PREFIX}{phrase(data['seconds'][name])} with the defaults, measured on the machine "
            "the README's syllabus describes (2 cores, no GPU).")


def readme_machine_line(data: dict[str, Any]) -> str:
    return f"{README_MACHINE_PREFIX}with each notebook's defaults, on: {data['machine']}."


def _readme_row(text: str, name: str) -> re.Match[str] | None:
    return re.search(rf"^(\|[^\n]*\(notebooks/{re.escape(name)}\)[^\n]*\|)([^|\n]*)\|\s*$", text, re.MULTILINE)


def problems() -> list[str]:
    """Every place where a quoted run time or machine disagrees with the record."""
    data = load()
    found = []
    readme = README.read_text()
    machine_lines = _README_MACHINE_LINE.findall(readme)
    if machine_lines != [readme_machine_line(data)]:
        found.append(f"README: the machine line should read {readme_machine_line(data)!r}, found {machine_lines}")
    for path in nbtools.notebooks():
        if path.name not in data["seconds"]:
            found.append(f"{path.name}: no measured run time in {RECORD.name}; run `make notebooks NB={path.relative_to(nbtools.ROOT)}`")
            continue
        want = first_cell_line(path.name, data)
        lines = _FIRST_CELL_LINE.findall(nbtools.read(path).cells[0].source)
        if lines != [want]:
            found.append(f"{path.name}: the first cell should state {want!r}, found {lines}")
        row = _readme_row(readme, path.name)
        stated = row.group(2).strip() if row else None
        if stated != phrase(data["seconds"][path.name]):
            found.append(f"README: the syllabus row of {path.name} should end in {phrase(data['seconds'][path.name])!r}, found {stated!r}")
    return found


def write() -> None:
    """Rewrite the README's machine line and rows, and each notebook's first-cell line, from the record."""
    data = load()
    readme = _README_MACHINE_LINE.sub(readme_machine_line(data), README.read_text())
    for path in nbtools.notebooks():
        if path.name not in data["seconds"]:
            continue
        row = _readme_row(readme, path.name)
        if row:
            readme = readme[: row.start(2)] + f" {phrase(data['seconds'][path.name])} " + readme[row.end(2):]
        nb = nbtools.read(path)
        source = _FIRST_CELL_LINE.sub(first_cell_line(path.name, data), nb.cells[0].source)
        if source != nb.cells[0].source:
            nb.cells[0].source = source
            nbtools.write(nb, path)
            nbtools.sync(path)  # the text source gets the same line
    README.write_text(readme)


def main(argv: list[str]) -> int:
    return nbtools.rewrite_or_check(argv, problems, write, current='run times agree with the record', usage=__doc__)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
