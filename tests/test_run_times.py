"""The run times the README and each notebook's first cell state are the ones `make notebooks` measured."""

from __future__ import annotations

import json
import shutil

import pytest

from tools import nbtools, run_times


def test_stated_run_times_agree_with_the_measurements():
    problems = run_times.problems()
    assert not problems, "\n".join(problems) + "\nre-run `make notebooks`, or `python tools/run_times.py` after editing the record"


def test_every_notebook_was_measured_on_the_recorded_machine():
    record = run_times.load()
    assert record["machine"], "the record names no machine"
    assert set(record["seconds"]) == {p.name for p in nbtools.notebooks()}


@pytest.mark.parametrize(("seconds", "text"), [(5, "under 1 min"), (59.9, "under 1 min"), (60, "about 1 min"),
                                               (89, "about 1 min"), (90, "about 2 min"), (452, "about 8 min")])
def test_phrase_rounds_to_whole_minutes(seconds, text):
    assert run_times.phrase(seconds) == text


def test_check_and_write_catch_and_fix_a_stale_quote(tmp_path, monkeypatch):
    """A changed measurement makes the check fail, and write() brings the README and notebook in line."""
    notebook = nbtools.notebooks()[0]
    for name, source in (("README", run_times.README), ("RECORD", run_times.RECORD)):
        shutil.copy(source, tmp_path / source.name)
        monkeypatch.setattr(run_times, name, tmp_path / source.name)
    (tmp_path / "notebooks").mkdir()
    copy = tmp_path / "notebooks" / notebook.name
    shutil.copy(notebook, copy)
    monkeypatch.setattr(nbtools, "notebooks", lambda: [copy])
    monkeypatch.setattr(nbtools, "sync", lambda path: None)
    data = run_times.load()
    data["seconds"] = {notebook.name: 3600.0}
    run_times.RECORD.write_text(json.dumps(data))

    found = run_times.problems()
    assert len(found) == 2 and all("about 60 min" in p for p in found), found
    run_times.write()
    assert run_times.problems() == []
    assert "about 60 min" in nbtools.read(copy).cells[0].source
    assert f"(notebooks/{notebook.name}) " in run_times.README.read_text()
