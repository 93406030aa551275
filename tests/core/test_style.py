"""The code base stays lint-clean and formatted (ruff, settings in pyproject.toml)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True
    )


@pytest.fixture(scope="module", autouse=True)
def ruff_installed() -> None:
    if ruff("--version").returncode != 0 and shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -r requirements-dev.txt)")


def test_ruff_finds_no_lint_errors() -> None:
    done = ruff("check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_code_is_ruff_formatted() -> None:
    done = ruff("format", "--check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


# Framework hooks documented by the base class they override.
HOOKS = {"call", "build", "get_config", "compute_output_shape", "find_class", "persistent_load"}


def _public_definitions(tree: ast.Module) -> list[ast.AST]:
    found: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            found.append(node)
            if isinstance(node, ast.ClassDef):
                found += [
                    item
                    for item in node.body
                    if isinstance(item, ast.FunctionDef)
                    and not item.name.startswith("_")
                    and not item.name.startswith("on_")
                    and item.name not in HOOKS
                ]
    return found


def test_every_public_function_has_a_docstring() -> None:
    missing = []
    for path in sorted([*(REPO / "cxr_core").rglob("*.py"), *(REPO / "cxr_app").glob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _public_definitions(tree):
            if ast.get_docstring(node) is None:
                missing.append(f"{path.name}:{node.lineno} {node.name}")
    assert not missing, "public definitions without a docstring:\n" + "\n".join(missing)
