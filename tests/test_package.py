"""The package's shape: its public names, its layers, and a lean executor."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import aiobgproc

SRC = Path(aiobgproc.__file__).parent

# Which internal modules each module may import (see docs/design.md).
LAYER = {
    "errors": 0,
    "_faults": 0,
    "_clock": 0,
    "models": 0,
    "steps": 1,
    "_stepcall": 2,
    "_protocol": 1,
    "_channel": 2,
    "_spec": 1,
    "store": 1,
    "_pidtime": 1,
    "_tree": 2,
    "_spawn": 3,
    "_warm": 1,
    "_zygote": 4,
    "_output": 1,
    "_changes": 1,
    "_recovery": 4,
    "_host": 1,
    "_guard": 3,
    "_location": 2,
    "_aiosqlite": 1,
    "_rows": 2,
    "postgres_store": 3,
    "_errorlog": 2,
    "executor": 3,
    "inprocess": 3,
    "sqlite_store": 3,
    "_runner": 4,
    "manager": 5,
    "cli": 6,
    "pytest_plugin": 6,
    "__main__": 7,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_all_is_sorted_and_every_name_is_importable() -> None:
    assert aiobgproc.__all__ == sorted(aiobgproc.__all__)
    for name in aiobgproc.__all__:
        assert getattr(aiobgproc, name) is not None


def test_modules_import_only_from_lower_layers() -> None:
    problems = []
    for path in SRC.glob("*.py"):
        name = path.stem
        if name == "__init__":
            continue
        assert name in LAYER, f"add {name} to LAYER"
        for imported in _imports(path):
            if LAYER[imported] >= LAYER[name] and not (
                name == "_location" and imported.endswith("_store")
            ):
                problems.append(
                    f"{name} (layer {LAYER[name]}) imports {imported} (layer {LAYER[imported]})"
                )
    assert problems == []


def test_manager_never_imports_sqlite_store() -> None:
    assert "sqlite_store" not in _imports(SRC / "manager.py")


def test_executor_imports_no_heavy_module() -> None:
    code = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(SRC.parent)!r})\n"
        "before = set(sys.modules)\n"
        "import aiobgproc.executor\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    for heavy in ("asyncio", "typing", "aiosqlite", "sqlite3", "dataclasses", "inspect", "psutil"):
        assert heavy not in loaded, f"the executor imports {heavy}"
