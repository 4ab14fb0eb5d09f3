"""The two install routes (pip via pyproject.toml, conda via environment.yml) stay in step."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_pip_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one `pip:` section"
    return env, pip[0]["pip"]


def test_dependency_lists_are_in_step():
    project = _pyproject()["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    _, pip = _conda_pip_list()
    listed = {r for r in pip if not r.startswith("-")}
    assert listed == wanted, f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"
    assert "--editable ." in pip, "environment.yml must install the project itself"


def test_lower_bounds_not_pins():
    project = _pyproject()["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert "==" not in requirement and "<" not in requirement, f"{requirement}: use a lower bound, not a pin or cap"
        assert ">=" in requirement, f"{requirement}: give a lower bound"
    assert project["requires-python"] == ">=3.10"


def test_required_minimums():
    deps = {re.split(r"[<>=]", r)[0]: r for r in _pyproject()["project"]["dependencies"]}
    assert deps["torch"] == "torch>=2.4"
    assert deps["torchvision"] == "torchvision>=0.19"
    assert deps["timm"] == "timm>=1.0"
    assert "tensorflow" not in deps and "google-cloud-images" not in deps


def test_conda_python_matches():
    env, _ = _conda_pip_list()
    assert "python>=3.10" in env["dependencies"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci
    assert "passed" in ci, ".ci/run must fail when no test ran"


def test_makefile_setup_is_stamped():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(STAMP): pyproject.toml" in makefile, "setup must rerun only when pyproject.toml changes"
    for target in ("lab:", "test:", "notebooks:"):
        assert target in makefile
