"""Checks what start() is given and turns it into the JSON-ready spec that is stored.

Everything here raises InvalidSpecError, before anything reaches the store.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ._retry import check_retry
from ._wire.job import CommandSpec, ProcessSpec, StepSpec, WorkSpec
from .errors import InvalidSpecError
from .models import PIPE, Command, Process, Step

_TARGET_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
MAX_STEPS = 1000


def check_timeout(value: object, what: str = "timeout") -> float | None:
    """None (no limit) or a number of seconds >= 0; ``inf`` also means no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpecError(f"{what} must be a number of seconds or None, not {value!r}")
    try:
        seconds = float(value)
    except OverflowError:  # an int past a float's range: more than any limit means none
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds) or seconds < 0:
        raise InvalidSpecError(f"{what} must be >= 0 seconds, not {value!r}")
    return None if math.isinf(seconds) else seconds


def dump_json(value: object, what: str) -> str:
    """Strict JSON (no NaN or infinity), or InvalidSpecError naming what was wrong."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(f"{what} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidSpecError(f"{what} is nested too deeply to serialise") from None


def check_data(data: object) -> dict[str, Any]:
    """The data given to start() or proceed(): a JSON-serialisable dict (None means {})."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidSpecError(f"data must be a dict, not {type(data).__name__}")
    as_dict = dict(data)
    if not all(isinstance(key, str) for key in as_dict):
        raise InvalidSpecError("data keys must be strings")
    # Round-trip so what the steps see is exactly what JSON can carry.
    loaded: dict[str, Any] = json.loads(dump_json(as_dict, "data"))
    return loaded


def check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidSpecError(f"{what} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidSpecError(f"{what} contains a NUL byte")
    return value


def check_program(value: object, what: str) -> str:
    """An executable found as given, or on PATH (the interpreter for executors, say)."""
    text = check_text(value, what)
    try:
        os.fsencode(text)
    except UnicodeError:
        raise InvalidSpecError(f"{what} {text!r} is not a valid file name") from None
    found = shutil.which(text) if text else None
    if found is None:
        raise InvalidSpecError(f"{what} {text!r} is not an executable program")
    return text


_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def check_module_names(names: object, what: str) -> tuple[str, ...]:
    """Module names (one as a string, or a sequence of them), e.g. for ``preload``."""
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, list | tuple):
        raise InvalidSpecError(f"{what} must be a list of module names, not {names!r}")
    for name in names:
        if not isinstance(name, str) or not _MODULE_RE.match(name):
            raise InvalidSpecError(f"{what}: {name!r} is not a module name like 'pkg.module'")
    return tuple(names)


def _check_cwd(cwd: object) -> str | None:
    if cwd is None:
        return None
    if not isinstance(cwd, str | os.PathLike):
        raise InvalidSpecError(f"cwd must be a path, not {type(cwd).__name__}")
    path = check_text(os.fspath(cwd), "cwd")
    if not os.path.isdir(path):
        raise InvalidSpecError(f"cwd {path!r} is not a directory")
    return os.path.abspath(path)


def _check_env(env: object) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise InvalidSpecError(f"env must be a mapping of strings, not {type(env).__name__}")
    checked: dict[str, str] = {}
    for key, value in env.items():
        name = check_text(key, "an env name")
        if not name or "=" in name:
            raise InvalidSpecError(f"env name {name!r} is empty or contains '='")
        checked[name] = check_text(value, f"env value of {name}")
    return checked


def command_spec(command: Command) -> CommandSpec:
    """The stored form of a Command: the argv exactly as it will be executed."""
    argv = command.argv
    if not isinstance(command.shell, bool):
        raise InvalidSpecError("shell must be True or False")
    if isinstance(argv, str):
        if not command.shell:
            raise InvalidSpecError(
                "a command given as one string needs shell=True; pass a list of arguments instead"
            )
        argv = [argv]
    if not isinstance(argv, list) or not argv:
        raise InvalidSpecError("argv must be a non-empty list of strings")
    for index, arg in enumerate(argv):
        check_text(arg, f"argv[{index}]")
    if not argv[0]:
        raise InvalidSpecError("argv[0] (the program) is empty")
    if command.shell:
        argv = ["/bin/sh", "-c", *argv]
    spec: CommandSpec = {
        "kind": "command",
        "argv": argv,
        "cwd": _check_cwd(command.cwd),
        "env": _check_env(command.env),
    }
    retry = check_retry(command.retry)
    if retry is not None:
        spec["retry"] = retry
    stop = check_signal(command.stop_signal, "stop_signal")
    if stop != signal.SIGTERM:
        spec["stop_signal"] = stop
    stdin = command.stdin
    if isinstance(stdin, bytes | bytearray | memoryview):
        spec["stdin_data"] = base64.b64encode(stdin).decode("ascii")
    elif isinstance(stdin, int) and not isinstance(stdin, bool) and stdin == PIPE:
        spec["stdin"] = "pipe"
    elif stdin is not None:
        raise InvalidSpecError(f"stdin must be None, bytes or aiobgproc.PIPE, not {stdin!r}")
    return spec


def check_signal(value: object, what: str) -> int:
    """A signal that exists here (a number or a ``signal.Signals``), as its number."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in _SIGNALS:
        raise InvalidSpecError(f"{what} must be a signal (e.g. signal.SIGINT), not {value!r}")
    return int(value)


_SIGNALS = frozenset(int(sig) for sig in signal.valid_signals())


def target_path(target: object) -> str:
    """The ``module:qualname`` import path of a step target, checked to resolve."""
    if isinstance(target, str):
        path = target.strip()
        if not _TARGET_RE.match(path):
            raise InvalidSpecError(f"step target {target!r} must look like 'package.module:name'")
    elif callable(target):
        module = getattr(target, "__module__", None)
        qualname = getattr(target, "__qualname__", None)
        if not module or not qualname or "<" in qualname:
            raise InvalidSpecError(
                f"step target {target!r} is not importable by name (a lambda or a local "
                "function); define it at module level"
            )
        if module == "__main__":
            raise InvalidSpecError(
                f"step target {qualname!r} is defined in __main__, which the executor cannot "
                "import; move it to a module"
            )
        path = f"{module}:{qualname}"
    else:
        raise InvalidSpecError(f"step target must be 'module:name' or a callable, not {target!r}")
    resolve_target(path)
    return path


def resolve_target(path: str) -> Callable[..., Any]:
    """Import the object a ``module:qualname`` path names; InvalidSpecError if it cannot."""
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        raise InvalidSpecError(
            f"step target {path!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidSpecError(
                f"step target {path!r}: {module_name!r} has no attribute {qualname!r}"
            ) from None
    if not callable(obj):
        raise InvalidSpecError(f"step target {path!r} is not a class or function")
    return obj  # type: ignore[no-any-return]


def _step_spec(name: str, step: object) -> StepSpec:
    if not isinstance(step, Step):
        raise InvalidSpecError(f"step {name!r} must be a Step, not {type(step).__name__}")
    if not isinstance(step.interrupt, bool):
        raise InvalidSpecError(f"step {name!r}: interrupt must be True or False")
    spec: StepSpec = {
        "name": name,
        "target": target_path(step.target),
        "args": list(step.args),
        "kwargs": dict(step.kwargs),
        "interrupt": step.interrupt,
    }
    dump_json({"args": spec["args"], "kwargs": spec["kwargs"]}, f"arguments of step {name!r}")
    retry = check_retry(step.retry, f"retry of step {name!r}")
    if retry is not None:
        spec["retry"] = retry
    return spec


_import_path: list[tuple[list[str], str | None, list[str]]] = []
"""The last sys.path seen, the working directory it was made absolute in (None: it did not
matter, every entry was absolute) and the result."""


def import_path() -> list[str]:
    """``sys.path`` with every entry absolute (the current directory for ""): where this
    process imports from, as another process must look. Worked out again only when
    sys.path changes, or the working directory does and an entry is relative."""
    current = sys.path
    if _import_path:
        seen, cwd, absolute = _import_path[0]
        if seen == current and (cwd is None or cwd == os.getcwd()):
            return list(absolute)
    relative = not all(entry and os.path.isabs(entry) for entry in current)
    cwd = os.getcwd() if relative else None
    absolute = [os.path.abspath(entry) if entry else os.getcwd() for entry in current]
    _import_path[:] = [(list(current), cwd, absolute)]
    return list(absolute)


def process_spec(process: Process) -> ProcessSpec:
    """The stored form of a Process: its steps, in order, with checked import paths."""
    if isinstance(process.steps, dict):
        pairs = list(process.steps.items())
    elif isinstance(process.steps, list) and all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in process.steps
    ):
        pairs = process.steps
    else:
        raise InvalidSpecError("steps must be a mapping of names to Steps or a sequence of Steps")
    if not pairs:
        raise InvalidSpecError("a process needs at least one step")
    if len(pairs) > MAX_STEPS:
        raise InvalidSpecError(f"a process may have at most {MAX_STEPS} steps")
    names: set[str] = set()
    steps = []
    for name, step in pairs:
        check_text(name, "a step name")
        if not name:
            raise InvalidSpecError("a step name is empty")
        if name in names:
            raise InvalidSpecError(f"step name {name!r} is used twice")
        names.add(name)
        steps.append(_step_spec(name, step))
    spec: ProcessSpec = {
        "kind": "process",
        "steps": steps,
        # Where start() found the steps: a worker started elsewhere looks there too.
        "path": import_path(),
        "cwd": _check_cwd(process.cwd),
        "env": _check_env(process.env),
    }
    retry = check_retry(process.retry)
    if retry is not None:
        spec["retry"] = retry
    return spec


def work_spec(work: object) -> tuple[WorkSpec, float | None]:
    """The stored spec of a Command or Process, and its own timeout."""
    if isinstance(work, Command):
        return command_spec(work), check_timeout(work.timeout)
    if isinstance(work, Process):
        return process_spec(work), check_timeout(work.timeout)
    raise InvalidSpecError(f"start() takes a Command or a Process, not {type(work).__name__}")
