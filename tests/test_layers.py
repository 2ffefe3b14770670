"""The import graph of the package is layered and has no circle (docs/engine.md, "Where each piece lives").

Read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ... import``, at the top
of a module or inside a function, is an arrow from the module to the module it names (``from pkg import
name`` is an arrow to ``pkg.name`` where that is a module, else to ``pkg``). ``if TYPE_CHECKING:`` blocks are
left out (they never run).

The layers, bottom to top, written once here: a module may import from its own layer or a lower one, never
from a higher one. Within the package, a unit is a top-level module (``config``) or subpackage (``engine``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "figkd"

#: Bottom to top. Each entry is the units of one layer (top-level modules and subpackages of figkd).
LAYERS: list[set[str]] = [
    {"errors"},                                                     # the user-facing errors
    {"atomic", "checks", "config", "grid", "paper", "wavelets"},   # plain values, files and transforms
    {"losses", "models"},                                           # what a step computes
    {"data"},                                                       # what a step reads
    {"engine"},                                                     # runs: the step, the loop, run directories
    {"analysis", "deploy", "experiments", "plugins", "tune"},       # tools built on runs
    {"demo", "cli", "__main__", "__init__"},                        # the command line and the public API
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by the name of its ``__init__``)."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _unit(module: str) -> str:
    """``figkd.engine.run`` -> ``engine``; ``figkd`` (the package's own __init__) -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> set[str]:
    """The figkd modules that ``module`` imports (see the module docstring)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                return
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    out.discard(module)
    return {m for m in out if m in MODULES}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_unit_of_the_package_has_a_layer():
    missing = sorted({_unit(m) for m in MODULES} - set(LAYER_OF))
    assert not missing, f"add {missing} to a layer of LAYERS in this file"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    upward = [f"{a} ({_unit(a)}, layer {LAYER_OF[_unit(a)]}) imports {b} ({_unit(b)}, layer {LAYER_OF[_unit(b)]})"
              for a, targets in sorted(GRAPH.items()) for b in sorted(targets)
              if LAYER_OF.get(_unit(b), -1) > LAYER_OF.get(_unit(a), -1)]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def _cycle() -> list[str] | None:
    """One import circle among the modules, or None (depth-first search, colours white/grey/black)."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if colour.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for start in sorted(GRAPH):
        if colour.get(start) is None:
            found = visit(start)
            if found:
                return found
    return None


def test_the_import_graph_has_no_circle():
    cycle = _cycle()
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("source, expected", [
    ("from ..engine import run\n", {"figkd.engine.run"}),
    ("from ..config import RunConfig\n", {"figkd.config"}),
    ("def f():\n    from ..analysis.common import read_config\n", {"figkd.analysis.common"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..engine.run import run\n", set()),
    ("import figkd.losses.kd\n", {"figkd.losses.kd"}),
])
def test_the_reader_sees_every_kind_of_import(tmp_path, source, expected):
    """The graph reader itself: relative, absolute, lazy and type-checking-only imports (so that a layering
    violation cannot hide in a form the reader skips)."""
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert _imports("figkd.data.mod", path) == expected


#: The loop's own module stays readable at a glance; a longer function in the engine is a job to name and move
#: out (issue 21: the Trainer had grown to eight jobs in 340 lines).
TRAINER_MAX_LINES, ENGINE_FUNCTION_MAX_LINES = 200, 80


def test_the_training_loop_stays_small_and_no_engine_function_is_long():
    engine = SRC / PACKAGE / "engine"
    assert len((engine / "trainer.py").read_text().splitlines()) < TRAINER_MAX_LINES
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(engine.glob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > ENGINE_FUNCTION_MAX_LINES]
    assert not long, long
