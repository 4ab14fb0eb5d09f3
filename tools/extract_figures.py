"""Write a notebook's PNG outputs to a folder, to look at them: ``python tools/extract_figures.py NB OUTDIR``."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbformat


def main(notebook: str, outdir: str) -> int:
    nb = nbformat.read(notebook, as_version=4)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for i, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if "image/png" in data:
                path = out / f"{Path(notebook).stem}_cell{i:02d}_{j}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                print(path)
                count += 1
    return 0 if count else 1


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
