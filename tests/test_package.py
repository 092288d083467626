"""The package's shape: its public names, its layers, and a lean executor."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import aiobgproc

SRC = Path(aiobgproc.__file__).parent

# Which internal modules each module may import (see docs/design.md): a module imports only
# from lower layers. Names are relative to the package ("_os.spawn" is aiobgproc._os.spawn).
LAYER = {
    # the vocabulary
    "errors": 0,
    "_faults": 0,
    "_tags": 0,
    "_clock": 0,
    "models": 0,
    "steps": 1,
    # what children run (nothing heavy: see test_child_modules_import_nothing_heavy)
    "_wire.job": 0,  # types only
    "_wire.frames": 1,
    "_child.stepcall": 2,
    "_child.executor": 3,
    "_child.zygote": 4,
    "_child.guard": 4,  # at kill time only, it borrows the manager side's tree finder
    # the manager's side of OS processes
    "_os.pidtime": 1,
    "_os.pidfd": 1,
    "_os.boot": 1,
    "_os.host": 2,
    "_os.tree": 2,
    "_os.zygote": 2,
    "_os.guard": 2,
    "_os.spawn": 3,
    "_os.executor_pool": 3.2,
    "_os.spares": 3.2,
    "_os.stdin": 1,
    "_wire.messages": 2,
    "_wire.channel": 3,
    # storage: store/ is layered inside itself, in tenths, all of it below _location (which
    # imports a store module only when it picks that store)
    "store": 1,  # the package: the protocol and records, re-exported
    "store.protocol": 1,
    "store.schema": 1,
    "store.triggers": 1,
    "_aiosqlite": 1,
    "store.rows": 1.1,
    "store.codec": 1.1,
    "store.sql": 1.2,
    "store.postgres_claim": 1.25,
    "store.postgres_schema": 1.3,
    "store.shared": 1.3,
    "store.sqlite_connection": 1.4,
    "store.sqlite_file": 1.5,
    "store.sqlite": 1.6,
    "store.postgres": 1.6,
    "_location": 2,
    # running and scheduling
    "_spec": 1,
    "_start_options": 2,
    "_list_filter": 3,
    "_queue_controls": 3,
    "_cron": 1,
    "_seconds": 0.2,
    "_retry": 0.5,
    "_schedule_controls": 3,
    "_restart": 3,
    "_event_log": 3,
    "_output_reading": 3,
    "_output": 1,
    "_changes": 1,
    "_errorlog": 2,
    "inprocess": 3,
    "_recovery": 4,
    "_run_controls": 3.5,
    "_runner": 4,
    "_steps_runner": 5,
    "_options": 3,
    "_scheduler": 6,
    "_schedule_firer": 6,
    "_watcher": 7,
    "_worker_controls": 7,
    "_process_controls": 7,
    "manager": 8,
    # the outside
    "_cli_format": 2,
    "_cli_queues": 3,
    "_cli_logs": 4,
    "_cli_schedules": 4,
    "_cli_burst": 9,
    "_cli_control": 9,
    # the dashboard (the web extra), served by `aiobgproc web`
    "web._security": 9.1,
    "web._html": 9.1,
    "web._api": 9.3,
    "web._pages": 9.5,
    "web._app": 9.7,
    "web": 9.8,
    "_cli_web": 9.9,
    "cli": 10,
    "pytest_plugin": 9,
    "__main__": 11,
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports (relative imports, resolved)."""
    package = list(path.relative_to(SRC).parent.parts)
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)]
        target = base + (node.module.split(".") if node.module else [])
        for alias in node.names:
            as_module = [*target, alias.name]
            if (SRC.joinpath(*as_module).with_suffix(".py")).exists():
                found.add(".".join(as_module))
            elif target:
                found.add(".".join(target))
    return found


def _modules() -> list[Path]:
    return [path for path in SRC.rglob("*.py") if path.name != "__init__.py"]


def test_all_is_sorted_and_every_name_is_importable() -> None:
    assert aiobgproc.__all__ == sorted(aiobgproc.__all__)
    for name in aiobgproc.__all__:
        assert getattr(aiobgproc, name) is not None


def test_modules_import_only_from_lower_layers() -> None:
    problems = []
    for path in _modules():
        name = _module_name(path)
        assert name in LAYER, f"add {name} to LAYER"
        for imported in _imports(path):
            if imported not in LAYER:
                continue  # a package's __init__ (re-exports only)
            if LAYER[imported] >= LAYER[name]:
                problems.append(
                    f"{name} (layer {LAYER[name]}) imports {imported} (layer {LAYER[imported]})"
                )
    assert problems == []


def test_manager_never_imports_sqlite_store() -> None:
    assert "store.sqlite" not in _imports(SRC / "manager.py")


@pytest.mark.parametrize("module", ["executor", "zygote", "guard", "stepcall"])
def test_child_modules_import_nothing_heavy(module: str) -> None:
    """What runs in a child process starts lean: a cold executor in ~13 ms, and every page
    the warm executor touches is copied into each child it forks."""
    code = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(SRC.parent)!r})\n"
        "before = set(sys.modules)\n"
        f"import aiobgproc._child.{module}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    for heavy in ("asyncio", "typing", "aiosqlite", "sqlite3", "dataclasses", "inspect", "psutil"):
        assert heavy not in loaded, f"aiobgproc._child.{module} imports {heavy}"
