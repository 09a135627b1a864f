"""The layer rule of ``utils``, read from the source: each module imports only its own layer or those below it.

core (the maths, at the top of utils/) -> nets, data -> training -> eval -> lessons, exercises; ``config`` is
below everything but the core, ``viz`` and ``course_map`` sit beside eval. No function-local imports of project
modules (they hide dependencies).
"""

import ast
from pathlib import Path

import pytest

from utils.course_map import PACKAGE_LAYERS

UTILS = Path(__file__).resolve().parent.parent / "utils"
CORE = ("tensors", "gaussians", "schedules", "forward", "denoiser", "sde", "time_grids", "samplers", "solvers",
        "analytic_dpm", "guidance", "oracles", "ode", "paths")
# layer -> the layers it may import (its own included), from the table the README's diagram is drawn from
ALLOWED = {name: {name, *below} for name, _, below in PACKAGE_LAYERS}
ALLOWED["package"] = {"core", "config"}  # utils/__init__.py


def layer_of(module: str) -> str:
    """'utils.training.zoo' -> 'training'; 'utils.samplers' -> 'core'."""
    parts = module.split(".")
    if parts == ["utils"]:
        return "package"
    head = parts[1]
    if head in CORE:
        return "core"
    if head == "config":
        return "config"
    if head in ("viz", "course_map"):
        return "shared"
    if head in ALLOWED:
        return head
    raise ValueError(f"module {module} is in no layer: add it to tests/test_layers.py")


def module_name(path: Path) -> str:
    rel = path.relative_to(UTILS.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path):
    """(line, imported module, at module level?) for every import of a utils module in ``path``."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            if target == "utils":
                names = [f"utils.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "utils" or name.startswith("utils."):
                yield node.lineno, name, id(node) in top


FILES = sorted(UTILS.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(UTILS)) for p in FILES])
def test_imports_follow_the_layers(path):
    mine = layer_of(module_name(path))
    for line, target, at_top in project_imports(path):
        theirs = layer_of(target)
        assert at_top, f"{path.name}:{line}: function-local import of {target} (move it to the top of the module)"
        assert theirs in ALLOWED[mine], f"{path.name}:{line}: a {mine} module imports {target} ({theirs} layer)"


def test_the_check_rejects_a_violation(tmp_path, monkeypatch):
    """The nearest wrong answer: a core module importing the training layer, and a hidden local import."""
    fake = UTILS / "samplers.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (
        "from utils.training.zoo import digits_ddpm\n\ndef f():\n    from utils import forward\n"))
    found = list(project_imports(fake))
    assert [(layer_of(t), top) for _, t, top in found] == [("training", True), ("core", False)]
    assert "training" not in ALLOWED[layer_of(module_name(fake))]


def test_the_table_is_what_the_docstring_says():
    assert ALLOWED["core"] == {"core"} and ALLOWED["config"] == {"config"}
    assert "lessons" not in set().union(*(ALLOWED[k] for k in ALLOWED if k not in ("lessons", "exercises")))
    assert "exercises" not in set().union(*(ALLOWED[k] for k in ALLOWED if k not in ("lessons", "exercises")))


def test_every_module_has_a_layer():
    assert {layer_of(module_name(p)) for p in FILES} >= {"core", "nets", "data", "training", "eval", "lessons"}
