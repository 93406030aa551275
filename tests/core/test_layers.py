"""The layering written in ``cxr_core.LAYERS`` holds: imports point down, and no module cycle."""

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


def _as_module(dotted: str) -> str:
    """``cxr_core.data.tables.scan`` -> ``cxr_core.data.tables`` (the longest module prefix)."""
    parts = dotted.split(".")
    while len(parts) > 1:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return "cxr_core"


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imports(path: Path, runtime_only: bool) -> set[str]:
    """The cxr_core modules a file imports, function-level imports included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _runtime_nodes(tree) if runtime_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; cxr_core imports absolutely")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cxr_core":
            found.update(_as_module(f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cxr_core")
    return found


def _graph(runtime_only: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        graph[module] |= _imports(path, runtime_only) - {module}
    return graph


def _unit(module: str) -> str:
    """A module's layering unit: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cxr_core"


def test_every_subpackage_and_top_level_module_has_a_layer() -> None:
    layer = {unit for units in LAYERS for unit in units}
    units = {_unit(module) for module in _graph()} - {"cxr_core"}
    assert units - layer == set()


def test_imports_only_point_down_the_layers() -> None:
    layer = {unit: level for level, units in enumerate(LAYERS) for unit in units}
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _unit(module) != "cxr_core"
        and _unit(target) not in ("cxr_core", _unit(module))
        and layer[_unit(target)] >= layer[_unit(module)]
    )
    assert upward == []


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph(runtime_only=True)
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target == "cxr_core":
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_layering_test_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from cxr_core.training.train import train_run\n")
    assert _imports(source, runtime_only=False) == {"cxr_core.training.train"}
