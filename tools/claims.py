"""Numbers in a notebook's prose that nothing backs: neither its own outputs nor a citation.

"Words follow numbers": a sentence about the notebook's own run states a number the run printed
(or asserted); a number from elsewhere names its source. :func:`unbacked_numbers` lists each number
in a markdown cell that is

* not found among the notebook's outputs (text and stream outputs, rounded the way prose rounds:
  ``0.7712`` backs "77%", "77.1%" and "0.77"),
* not in the notebook's code (a parameter's default, a layer count the code spells out),
* not in a sentence that cites (an author and year, a table, section, figure or equation number, a
  ``benchmarks/results/`` file or a link),
* and not one of the obvious: small counts (0-10), years, notebook numbers, and numbers that are
  part of a name (``ResNet-101``, ``v1.5``, ``3x3``, ``conv2_x``).

Usage: ``python tools/claims.py notebooks/08_tuning.ipynb`` prints them.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import nbtools  # noqa: E402

# A number as prose writes it: 12, 1,000, 0.77, 77.1%, 1e-3, 2.5x; not part of a word or a name.
_NUMBER = re.compile(r"(?<![\w.\-/×])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e-?\d+)?)(\s*%)?(?![\w\-/×]|\.\d)")
_NAME = r"[A-Z][^\W\d_]+"  # a capitalised name, accents included (Jégou)
# A sentence cites when it names a paper, a part of one, a results file or a link.
_CITATION = re.compile(
    rf"\b{_NAME}(?: et al\.?| & {_NAME})?(?:'s)?,? \(?(?:19|20)\d\d"  # He et al. 2016, Wu & He (2018), Touvron & Jégou (2021)
    rf"|\b{_NAME} (?:et al\.|& {_NAME})[^.]{{0,80}}\((?:19|20)\d\d\)"  # He et al.'s "Bag of Tricks" (2019)
    r"|\b(?:Table|Tab\.|Fig\.|Figure|sec\.?|section|Section|eq\.|Eq\.|equation|Algorithm|appendix|Appendix)\s*\d"
    r"|benchmarks/results/|https?://|arXiv"
    r"|\bnotebook \d\d\b"  # measured in another notebook of the series
)
# Sentence ends, but not after the abbreviations citations use ("et al.", "Fig.", "e.g.").
_SENTENCE_END = re.compile(r"(?<!\bal\.)(?<!\bFig\.)(?<!\bsec\.)(?<!\beq\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bvs\.)"
                           r"(?<=[.!?])\s+(?=[A-Z(*`\[])")
_PARAGRAPH = re.compile(r"\n\s*\n|\n\s*(?=[-*|#] |\d+\. )")
_NUMBER_IN_TEXT = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _strip(markdown: str) -> str:
    """Markdown without fenced code, inline code, HTML tags, link targets, LaTeX and headings (no claims there)."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    # Inline code is no claim, but a results file named in it is a citation: keep that one's text.
    text = re.sub(r"`([^`\n]*)`", lambda m: m[1] if "benchmarks/results/" in m[1] else " ", text)
    text = re.sub(r"<[^>\n]+>", " ", text)
    text = re.sub(r"\]\((https?://)?[^)\s]*\)", lambda m: "] " + m[1] if m[1] else "]", text)  # a web link cites
    text = re.sub(r"\$[^$\n]+\$", " ", text)  # LaTeX: equations, not measurements
    return re.sub(r"^#+ .*$", " ", text, flags=re.M)  # headings: "### 6.3 ..." numbers a section


def _values(text: str) -> set[float]:
    values = set()
    for token in _NUMBER_IN_TEXT.findall(text.replace(",", "")):
        try:
            value = float(token)
        except ValueError:
            continue
        if math.isfinite(value):
            values.add(abs(value))
    return values


def output_text(nb: Any) -> str:
    """All text the notebook's code cells printed or displayed."""
    parts = []
    for cell in nbtools.code_cells(nb):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token and "e" not in token else 0


_SCALE_WORDS = {"thousand": 1e3, "million": 1e6, "billion": 1e9}


def _backed(token: str, percent: bool, outputs: set[float], scale: float = 1.0) -> bool:
    """Whether some output value, rounded as the prose rounds, gives this number.

    ``scale``: the number was followed by "thousand", "million" or "billion" ("about 116 million"
    is backed by a printed 115,605,504 as well as by a printed 115.6).
    """
    value = float(token.replace(",", ""))
    places = _decimals(token)
    tolerance = 0.5 * 10.0 ** -places + 1e-9
    if scale != 1.0 and any(abs(out - value * scale) <= tolerance * scale for out in outputs):
        return True
    for out in outputs:
        candidates = (out, out * 100) if percent or value > 1 else (out, out * 100, out / 100)
        if any(abs(c - value) <= tolerance for c in candidates):
            return True
    return False


def _obvious(token: str, percent: bool, sentence: str, start: int) -> bool:
    value = float(token.replace(",", ""))
    if not percent and "." not in token and value <= 10:
        return True  # small counts: "two blocks", "3 seeds", "notebook 07"
    if not percent and "." not in token and 1900 <= value <= 2030:
        return True  # years
    before = sentence[max(0, start - 10):start].lower()
    return bool(re.search(r"(notebook|notebooks|section|step|cell|exercise|question)s? $", before))


def unbacked_numbers(nb: Any) -> list[str]:
    """``"cell N: <number> in '<sentence>'"`` for each number in the prose that nothing backs."""
    outputs = _values(output_text(nb))
    code = _values("\n".join(cell.source for cell in nbtools.code_cells(nb)))
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for paragraph in _PARAGRAPH.split(_strip(cell.source)):
            sentences = _SENTENCE_END.split(paragraph)
            for number, sentence in enumerate(sentences):
                # A number is backed by a citation in its sentence or the one before it.
                if _CITATION.search(sentence) or (number and _CITATION.search(sentences[number - 1])):
                    continue
                found += _unbacked_in(index, sentence, outputs, code)
    return found


def _unbacked_in(index: int, sentence: str, outputs: set[float], code: set[float]) -> list[str]:
    """The numbers of one uncited sentence that neither the outputs nor the code hold."""
    found = []
    for match in _NUMBER.finditer(sentence):
        token, percent = match.group(1), bool(match.group(2))
        if _obvious(token, percent, sentence, match.start()):
            continue
        if not percent and float(token.replace(",", "")) in code:
            continue
        word = re.match(r"\s+(thousand|million|billion)\b", sentence[match.end():])
        if not _backed(token, percent, outputs, _SCALE_WORDS[word[1]] if word else 1.0):
            found.append(f"cell {index}: {token}{'%' if percent else ''} in {' '.join(sentence.split())[:160]!r}")
    return found


def main(paths: list[str]) -> int:
    total = 0
    for name in paths or [str(p) for p in nbtools.notebooks()]:
        found = unbacked_numbers(nbtools.read(Path(name)))
        total += len(found)
        print(f"{name}: {len(found)} unbacked")
        for line in found:
            print("  " + line)
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
