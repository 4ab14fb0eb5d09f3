"""Re-execute notebooks in place from a fresh kernel, then strip volatile metadata.

Usage: ``python tools/run_notebooks.py notebooks/*.ipynb`` (what ``make notebooks`` runs).

Each notebook is first synchronised with its text source ``notebooks/py/NN_topic.py`` by
``jupytext --sync`` (the newer of the two files wins, so an edit made in either reaches the other),
then executed, and the text source is synchronised again. Prints each notebook's wall time and
records it in ``benchmarks/results/notebook_run_times.json``, which the README and the notebook's
first cell quote (``tools/run_times.py``).

``--no-record`` executes without recording the time: for drafts run while the machine is busy with
other work, whose times would be wrong (the final run on a quiet machine records them).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import nbtools, run_times  # noqa: E402


def main(paths: list[str]) -> int:
    record = "--no-record" not in paths
    paths = [p for p in paths if p != "--no-record"]
    if not paths:
        paths = [str(p) for p in nbtools.notebooks()]
    total = 0.0
    for name in paths:
        path = Path(name)
        if not path.exists():
            print(f"no such notebook: {path}", file=sys.stderr)
            return 2
        nbtools.sync(path)
        start = time.perf_counter()
        try:
            executed = nbtools.execute(nbtools.read(path))
        except Exception as err:  # report which notebook failed, keep the committed copy untouched
            print(f"FAILED {path}: {type(err).__name__}: {str(err)[-2000:]}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - start
        total += seconds
        nbtools.write(nbtools.clean(executed), path)
        if record:
            run_times.record(path.name, seconds)
            run_times.write()  # the README's syllabus row and the first cell quote the new time
        nbtools.sync(path)
        problems = nbtools.violations(executed) + nbtools.pairing_problems(path)
        status = "ok" if not problems else "; ".join(problems)
        print(f"{path}: {seconds:.0f} s ({status})", flush=True)
    print(f"total: {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
