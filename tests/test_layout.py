"""The layout's one direction of dependency (README, Architecture), read from the
imports of every module: the core never imports the engine, the engine never imports
experiments, plotting or storage, and nothing below experiments imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shallowflow

ROOT = Path(shallowflow.__file__).parent
CORE = {
    "model",
    "geometry",
    "implicit",
    "data",
    "inits",
    "observables",
    "kernel",
    "linalg",
    "activations",
    "errors",
}
ENGINE = {
    "engine",
    "planning",
    "trajectory",
    "solvers",
    "start",
    "config",
    "results",
    "devices",
    "compilation",
}
UPPER = {"experiments", "verify", "cli", "api"}
EDGE = {"storage", "plots", "report", "io"}


def _imports(path: Path) -> set[str]:
    """Top-level shallowflow subpackages/modules that ``path`` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("shallowflow")
        ):
            parts = node.module.split(".")
            if len(parts) > 1:
                out.add(parts[1])
            else:  # from shallowflow import x
                out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("shallowflow.")
            )
    return out


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue  # the package's flat public API re-exports from every layer
        yield rel.parts[0].removesuffix(".py"), rel, _imports(path)


@pytest.mark.parametrize("top, rel, imported", list(_modules()), ids=lambda x: str(x))
def test_dependencies_point_down(top, rel, imported):
    imported = imported - {top}
    if top in CORE:
        assert imported <= CORE, f"{rel} (core) imports {imported - CORE}"
    if top in ENGINE:
        assert not imported & (UPPER | EDGE), f"{rel} (engine) imports {imported & (UPPER | EDGE)}"
    if top in ("stats", "theory", "report", "storage", "plots", "io"):
        assert not imported & UPPER, f"{rel} imports {imported & UPPER}"


def test_no_module_grows_past_the_style_limit():
    """STYLE.md: a module past ~400 lines does too much (the exact flow, one algorithm
    with its event handling, is the known exception)."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert set(long) <= {"solvers/exact.py", "theory/closed_form.py"}, long
