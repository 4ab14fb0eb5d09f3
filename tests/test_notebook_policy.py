"""Every committed notebook is executed in order, parameterised, clean, and follows the template."""

from __future__ import annotations

import copy

import nbformat
import pytest

from tools import nbtools

NOTEBOOKS = nbtools.notebooks()


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under notebooks/"
    assert NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_policy(path):
    problems = nbtools.violations(nbtools.read(path))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_template(path):
    problems = nbtools.template_violations(nbtools.read(path), path.name)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_clean_is_a_no_op_on_committed_notebooks(path):
    nb = nbtools.read(path)
    assert nbtools.clean(copy.deepcopy(nb)) == nb, f"{path.name} carries volatile metadata: run `make notebooks`"


# The checker itself must catch what it claims to catch.


def _good_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    params = nbformat.v4.new_code_cell("N = 1", execution_count=1, metadata={"tags": ["parameters"]})
    body = nbformat.v4.new_code_cell("print(N)", execution_count=2)
    body.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), params, body]
    return nb


def test_checker_accepts_a_good_notebook():
    assert nbtools.violations(_good_notebook()) == []


def test_checker_rejects_stale_execution_counts():
    nb = _good_notebook()
    nb.cells[2].execution_count = 5
    assert any("execution counts" in p for p in nbtools.violations(nb))


def test_checker_rejects_unexecuted_cells():
    nb = _good_notebook()
    nb.cells[2].execution_count = None
    assert any("never executed" in p for p in nbtools.violations(nb))


def test_checker_rejects_stored_errors_unless_tagged():
    nb = _good_notebook()
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    assert any("stored error" in p for p in nbtools.violations(nb))
    nb.cells[2].metadata["tags"] = ["raises-exception"]
    assert nbtools.violations(nb) == []


def test_checker_rejects_missing_or_duplicate_parameters_cell():
    nb = _good_notebook()
    nb.cells[1].metadata = {}
    assert any("parameters" in p for p in nbtools.violations(nb))
    nb = _good_notebook()
    nb.cells[2].metadata["tags"] = ["parameters"]
    assert any("parameters" in p for p in nbtools.violations(nb))


def test_checker_rejects_other_kernels_and_volatile_metadata():
    nb = _good_notebook()
    nb.metadata["kernelspec"]["name"] = "venv-kernel"
    nb.metadata["widgets"] = {"state": {}}
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    problems = "\n".join(nbtools.violations(nb))
    assert "kernelspec" in problems and "widgets" in problems and "execution" in problems
    assert nbtools.violations(nbtools.clean(nb)) == []


# Stored outputs must not name the machine that ran them (issue 13, section 5).


@pytest.mark.parametrize(
    "text, what",
    [
        ("checkpoint '/tmp/tmpe0fit08l/resnet101_random.pth' does not match", "absolute path"),
        ("saved to /work/main/runs/a/metrics.json\n", "absolute path"),
        ("reading /home/alice/data\n", "absolute path"),
        ("reading /Users/alice/data\n", "absolute path"),
        ("reading C:\\Users\\alice\\data\n", "Windows path"),
        ("written under tmpab_cd123 for now\n", "temporary folder"),
        ("platform : Linux-6.18.44-fc-v1045-x86_64-with-glibc2.36\n", "kernel release"),
        ("kernel 5.15.0-91-generic\n", "kernel release"),
        ("Darwin Kernel Version 23.1.0\n", "kernel release"),
    ],
)
def test_checker_rejects_machine_strings_in_outputs(text, what):
    nb = _good_notebook()
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    assert any(what in p and "cell 2" in p for p in nbtools.violations(nb)), nbtools.violations(nb)


def test_checker_looks_in_every_kind_of_text_output():
    nb = _good_notebook()
    nb.cells[2].outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "PosixPath('/home/bob/x')"}, execution_count=2),
        nbformat.v4.new_output("error", ename="OSError", evalue="no file /tmp/x", traceback=["File /work/a.py"]),
    ]
    nb.cells[2].metadata["tags"] = ["raises-exception"]
    found = "\n".join(p for p in nbtools.violations(nb) if "absolute path" in p)
    assert all(path in found for path in ("'/home/'", "'/tmp/'", "'/work/'")), found


def test_checker_rejects_this_host_name():
    nb = _good_notebook()
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran on build-box-17\n")]
    import re

    found = nbtools.machine_strings(nb, extra=[("the host name", re.compile("build-box-17"))])
    assert found and "host name" in found[0]


def test_checker_accepts_relative_paths_urls_and_versions():
    nb = _good_notebook()
    text = ("wrote runs/demo/metrics.json; see https://example.org/home/tmp/ and data/README.md\n"
            "torch 2.4.1+cu121, python 3.11.7, platform Linux\n"
            "a 1/tmp ratio and the path notebooks/04_gpu.ipynb\n")
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    assert nbtools.machine_strings(nb, extra=[]) == []


def test_checker_rejects_fragmented_streams_and_clean_joins_them():
    nb = _good_notebook()
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="a\n"),
                           nbformat.v4.new_output("stream", name="stdout", text="b\n")]
    assert any("in pieces" in p for p in nbtools.violations(nb))
    cleaned = nbtools.clean(nb)
    assert [o.text for o in cleaned.cells[2].outputs] == ["a\nb\n"]
    assert nbtools.violations(cleaned) == []
