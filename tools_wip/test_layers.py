"""The layering written in cxr_core/__init__.py holds: imports point down, never in a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import cxr_core
from cxr_core import LAYERS

PACKAGE = Path(cxr_core.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every cxr_core module a file imports (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "cxr_core":
                found.update(_as_module(f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cxr_core")
    return found


def _as_module(dotted: str) -> str:
    """`cxr_core.data.tables.scan` -> `cxr_core.data.tables` (the longest prefix that is a module)."""
    parts = dotted.split(".")
    while len(parts) > 1:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return "cxr_core"


def _unit(module: str) -> str:
    """The layering unit of a module: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cxr_core"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        graph[module] |= _imports(path) - {module}
    return graph


def _layer_of() -> dict[str, int]:
    return {unit: level for level, units in enumerate(LAYERS) for unit in units}


def test_every_subpackage_and_top_module_has_a_layer() -> None:
    layer = _layer_of()
    units = {_unit(module) for module in _graph()} - {"cxr_core", "__main__"}
    assert units - set(layer) == set()


def test_imports_only_point_down_the_layers() -> None:
    layer = _layer_of()
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _unit(module) not in ("cxr_core", "__main__", "cli")
        and _unit(target) != _unit(module)
        and _unit(target) != "cxr_core"
        and layer[_unit(target)] >= layer[_unit(module)]
    )
    assert upward == []


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # the package's own __init__ re-exports config and errors; that is not a cycle of code
    assert [c for c in cycles if not c.startswith("cxr_core ->")] == []


def test_the_library_never_imports_streamlit() -> None:
    offenders = [
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        if "streamlit" in {name.split(".")[0] for name in _all_imported_names(path)}
    ]
    assert offenders == []


def _all_imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names
