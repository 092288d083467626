"""Calling a step target and checking what it returns: shared by the executor and
execute_steps/run_steps. Lean on purpose (see executor.py)."""

from __future__ import annotations

import importlib

from . import steps

TYPE_CHECKING = False  # typing costs ~10 ms of executor start-up
if TYPE_CHECKING:
    from typing import Any

_JSON_SCALARS = (str, int, float, bool, type(None))


class StepFailed(Exception):
    """A step's result cannot be used (not a dict, not serialisable)."""


def resolve(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


async def await_it(awaitable: Any) -> Any:
    return await awaitable


def invoke(
    target: Any, args: list[Any], kwargs: dict[str, Any], data: dict[str, Any]
) -> tuple[Any, bool]:
    """Call a step target on ``data``: its raw result (maybe awaitable), and whether the
    target is an InterruptingStep."""
    if isinstance(target, type):
        instance = target(*args, **kwargs)
        return instance.execute(data), isinstance(instance, steps.InterruptingStep)
    return target(data, *args, **kwargs), False


def call_step(
    target: Any, args: list[Any], kwargs: dict[str, Any], data: dict[str, Any]
) -> tuple[Any, bool]:
    """Like invoke, but an async step is run to completion with asyncio.run."""
    result, interrupting = invoke(target, args, kwargs, data)
    if hasattr(result, "__await__"):
        import asyncio  # only for async steps: it costs ~35 ms of start-up

        result = asyncio.run(await_it(result))
    return result, interrupting


def _bad_type(value: Any, depth: int = 0) -> str | None:
    """The name of the first type in ``value`` that JSON cannot carry, if any."""
    if depth > 500:
        return "a structure nested more than 500 levels deep"
    if isinstance(value, _JSON_SCALARS):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{type(key).__name__} (as a dict key)"
            found = _bad_type(item, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for item in value:
            found = _bad_type(item, depth + 1)
            if found:
                return found
        return None
    return type(value).__name__


def step_output(name: str, result: Any) -> tuple[dict[str, Any], bool]:
    """Check a step's return value: a dict (None means {}), or Interrupt(dict)."""
    interrupt = isinstance(result, steps.Interrupt)
    if interrupt:
        result = result.data
    if result is None:
        return {}, interrupt
    if not isinstance(result, dict):
        raise StepFailed(
            f"step {name!r} returned {type(result).__name__}, but a step must return a dict"
            " (or None)"
        )
    bad = _bad_type(result)
    if bad is not None:
        raise StepFailed(f"step {name!r} returned a value that is not JSON-serialisable: {bad}")
    return result, interrupt
