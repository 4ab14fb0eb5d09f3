"""The two install routes (pip via pyproject.toml, conda via environment.yml) stay in step."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10, the declared minimum, has no tomllib; the dev extra installs tomli there
    import tomli as tomllib

import yaml

ROOT = Path(__file__).resolve().parents[1]


# Import name -> pip name where they differ, and what never needs declaring.
PIP_NAME = {"sklearn": "scikit-learn", "skimage": "scikit-image", "yaml": "pyyaml", "PIL": "pillow"}
STDLIB = set(sys.stdlib_module_names) | {"tutorial_lib"}


def _declared_runtime() -> set[str]:
    """pip names of the main (non-extra) dependencies, lower-cased."""
    return {re.split(r"[<>=;\[ ]", r)[0].lower() for r in _pyproject()["project"]["dependencies"]}


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
        specifier = requirement.split(";")[0]  # an environment marker may compare versions
        assert "==" not in specifier and "<" not in specifier, f"{requirement}: use a lower bound, not a pin or cap"
        assert ">=" in specifier, f"{requirement}: give a lower bound"
    assert project["requires-python"] == ">=3.10"


MINIMUM_PYTHON = (3, 10)


def test_declared_minimum_python_is_the_one_tested():
    requires = _pyproject()["project"]["requires-python"]
    assert requires == ">={}.{}".format(*MINIMUM_PYTHON)
    ruff = _pyproject()["tool"]["ruff"]
    assert ruff["target-version"] == "py{}{}".format(*MINIMUM_PYTHON), "ruff must check the declared minimum's syntax"


def test_every_python_file_parses_as_the_declared_minimum():
    """Syntax newer than the declared minimum (e.g. ``except*`` on 3.10) would break those installs."""
    files = [p for folder in ("tutorial_lib", "tests", "benchmarks", "tools", "notebooks/py") for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 20
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=MINIMUM_PYTHON)


def test_imports_the_package_needs_are_declared():
    """Each third-party module ``tutorial_lib`` imports is a declared dependency (by its pip name)."""
    declared = _declared_runtime()
    # Installed with a declared package: Pillow comes with torchvision, numpy with torch.
    implied = {"pillow"}
    stdlib = STDLIB
    for path in (ROOT / "tutorial_lib").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in stdlib:
                    continue
                package = PIP_NAME.get(top, top).lower()
                assert package in declared or package in implied, f"{path.name} imports {top!r}; declare {package} in pyproject.toml"


def test_notebooks_need_only_the_main_dependencies():
    """What a notebook imports (or runs with ``python -m``) is installed by ``pip install -e .``.

    That is the README's Colab recipe and the instructors' route: the ``dev`` extra is for the tests.
    """
    declared = _declared_runtime()
    stdlib = STDLIB
    sources = sorted((ROOT / "notebooks" / "py").glob("*.py"))
    assert sources
    for path in sources:
        text = path.read_text()
        tree = ast.parse(text)
        names = re.findall(r"""["']-m["'],\s*["']([\w.]+)["']""", text)  # subprocess [python, "-m", name]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.append(node.module)
        for name in names:
            top = name.split(".")[0]
            if (ROOT / top).is_dir() or (ROOT / f"{top}.py").exists():
                continue  # the repository's own code (e.g. a benchmarks script): every route clones the repository
            if top == "pip":
                continue  # the Colab cell's installer: it installs the rest, and every venv and Colab has it
            if top not in stdlib:
                package = PIP_NAME.get(top, top).lower()
                assert package in declared, f"{path.name} uses {top!r}; declare {package} in pyproject's dependencies"


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


def test_package_exposes_its_entry_points_and_every_module():
    """``import tutorial_lib`` finds the main entry points; every module has ``__all__`` and a line in the map."""
    import importlib

    import tutorial_lib

    files = {p.stem for p in (ROOT / "tutorial_lib").glob("*.py") if not p.stem.startswith("_")}
    assert set(tutorial_lib.MODULES) == files, "tutorial_lib.MODULES must list every public module"
    for name in tutorial_lib.MODULES:
        module = importlib.import_module(f"tutorial_lib.{name}")
        assert getattr(tutorial_lib, name) is module
        assert f"``{name}``" in tutorial_lib.__doc__, f"help(tutorial_lib) does not describe the module {name}"
        assert len(module.__all__) == len(set(module.__all__)), f"{name}.__all__ repeats a name"
        for public in module.__all__:
            assert not public.startswith("_") and hasattr(module, public), f"{name}.__all__ lists {public!r}"
    for name, module_name in tutorial_lib._EXPORTS.items():
        module = importlib.import_module(f"tutorial_lib.{module_name}")
        assert name in module.__all__, f"tutorial_lib exports {name} from {module_name}, whose __all__ lacks it"
        assert getattr(tutorial_lib, name) is getattr(module, name)
    for wanted in ("fit", "evaluate", "FitConfig", "load_dataset", "resnet101", "get_recipe", "seed_everything"):
        assert wanted in tutorial_lib.__all__
    assert sorted(dir(tutorial_lib)) == sorted(tutorial_lib.__all__)


def test_unknown_package_attribute_says_where_to_look():
    import pytest

    import tutorial_lib

    with pytest.raises(AttributeError, match=r"help\(tutorial_lib\)"):
        tutorial_lib.fitt  # noqa: B018


def test_importing_the_package_does_not_import_torch():
    """``python -m tutorial_lib --help`` and ``import tutorial_lib`` stay fast: modules load on first use."""
    import subprocess

    code = "import sys, tutorial_lib; assert 'torch' not in sys.modules; tutorial_lib.fit; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
