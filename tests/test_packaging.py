"""The environment files agree, and `utils` is the repository's own package."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_utils_imports_from_this_repository():
    import utils

    assert Path(utils.__file__).resolve().parent == ROOT / "utils"


def test_environment_yml_installs_the_project_with_dev_extra():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"], "conda-forge only"
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-e .[dev]"]], "pip section must install the project itself (-e .[dev])"
    conda_pkgs = [d for d in deps if isinstance(d, str)]
    names = {re.split(r"[<>=!\s]", d)[0] for d in conda_pkgs}
    assert names == {"python", "pip"}, f"dependencies belong in pyproject.toml, not environment.yml: {names}"
    py = next(d for d in conda_pkgs if d.startswith("python"))
    req = _pyproject()["project"]["requires-python"]
    assert py.replace("python", "") == req, f"environment.yml {py!r} disagrees with requires-python {req!r}"


def test_dev_extra_has_the_notebook_and_test_tools():
    proj = _pyproject()["project"]
    dev = {re.split(r"[<>=!\[\s]", d)[0].lower() for d in proj["optional-dependencies"]["dev"]}
    assert {"jupyterlab", "jupytext", "nbval", "pytest", "pytest-xdist", "hypothesis"} <= dev
    core = {re.split(r"[<>=!\[\s]", d)[0].lower() for d in proj["dependencies"]}
    assert {"torch", "numpy", "matplotlib", "ipywidgets"} <= core
    assert "torchvision" not in core | dev


def test_torch_range_admits_the_cpu_build():
    """CI pre-installs torch 2.13 (CPU); the requirement must accept it so pip installs nothing bigger."""
    torch_req = next(d for d in _pyproject()["project"]["dependencies"] if d.startswith("torch"))
    assert torch_req == "torch>=2.1,<3"


def test_jupytext_pairs_ipynb_with_py_percent():
    assert (ROOT / "jupytext.toml").read_text().strip() == 'formats = "ipynb,py:percent"'


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make lab" in readme


def test_every_utils_folder_is_a_package_the_build_includes():
    """A non-editable install must carry the layers too: each folder has __init__.py and setuptools finds it."""
    from setuptools import find_packages

    folders = {p.parent for p in (ROOT / "utils").rglob("*.py") if "__pycache__" not in p.parts}
    assert all((f / "__init__.py").exists() for f in folders), sorted(str(f) for f in folders)
    found = set(find_packages(str(ROOT), include=_pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]))
    assert found == {".".join(f.relative_to(ROOT).parts) for f in folders}
