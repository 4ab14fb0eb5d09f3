"""Every notebook has a jupytext text source with the same cells, and the pairing check can fail."""

from __future__ import annotations

import shutil

import pytest

from tools import nbtools

NOTEBOOKS = nbtools.notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_and_text_source_are_in_sync(path):
    problems = nbtools.pairing_problems(path)
    assert not problems, "\n".join(problems)


def test_every_text_source_has_its_notebook():
    names = {p.stem for p in NOTEBOOKS}
    orphans = sorted(p.name for p in nbtools.TEXT_DIR.glob("*.py") if p.stem not in names)
    assert not orphans, f"text sources without a notebook: {orphans} (delete them, or run `make sync`)"


def test_jupytext_config_pairs_into_the_py_folder():
    config = (nbtools.NOTEBOOK_DIR / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py//py:percent"' in config


def test_pairing_check_catches_an_edit_a_tag_and_a_missing_cell(tmp_path):
    source = NOTEBOOKS[0]
    (tmp_path / "py").mkdir()
    nb_path, py_path = tmp_path / source.name, tmp_path / "py" / (source.stem + ".py")
    shutil.copy(source, nb_path)
    shutil.copy(nbtools.text_source(source), py_path)
    assert nbtools.pairing_problems(nb_path) == []

    text = py_path.read_text()
    py_path.write_text(text.replace("# %% tags=[\"parameters\"]", "# %%", 1))
    assert any("tags" in p for p in nbtools.pairing_problems(nb_path))

    py_path.write_text(text.replace("import ", "import  ", 1))
    assert any("source" in p for p in nbtools.pairing_problems(nb_path))

    py_path.write_text(text + "\n# %%\nprint('one cell more')\n")
    assert any("cells" in p for p in nbtools.pairing_problems(nb_path))

    py_path.unlink()
    assert any("no text source" in p for p in nbtools.pairing_problems(nb_path))
