"""Calling a step target and checking what it returns: shared by the executor and
execute_steps/run_steps. Lean on purpose (see executor.py)."""

from __future__ import annotations

import importlib
import math

from .. import steps
from ..errors import StepOutputError

TYPE_CHECKING = False  # typing costs ~10 ms of executor start-up
if TYPE_CHECKING:
    from typing import Any


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


def to_plain(value: Any, where: str, depth: int = 0) -> Any:
    """A copy of ``value`` made of exact JSON types (dict, list, str, int, float, bool, None).

    Subclasses JSON accepts (OrderedDict, a str or int enum, a tuple) become their plain
    form, as ``json.loads(json.dumps(value))`` would make them, without importing json.
    Raises StepOutputError naming where the first unacceptable value is.
    """
    if value is None or value is True or value is False:
        return value
    if depth > 500:
        raise StepOutputError(f"{where} is nested more than 500 levels deep")
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        if math.isnan(number) or math.isinf(number):
            raise StepOutputError(f"{where} is the float {number!r}, which JSON cannot carry")
        return number
    if isinstance(value, dict):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StepOutputError(
                    f"{where} has a key of type {type(key).__name__}; keys must be strings"
                )
            plain[str.__str__(key)] = to_plain(item, f"{where}[{key!r}]", depth + 1)
        return plain
    if isinstance(value, list | tuple):
        return [to_plain(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
    raise StepOutputError(f"{where} is a {type(value).__name__}, which JSON cannot carry")


def step_output(name: str, result: Any) -> tuple[dict[str, Any], bool]:
    """Check a step's return value: a dict (None means {}), or Interrupt(dict)."""
    interrupt = isinstance(result, steps.Interrupt)
    if interrupt:
        result = result.data
    if result is None:
        return {}, interrupt
    if not isinstance(result, dict):
        raise StepOutputError(
            f"step {name!r} returned {type(result).__name__}, but a step must return a dict"
            " (or None)"
        )
    try:
        return to_plain(result, "the output"), interrupt
    except StepOutputError as exc:
        raise StepOutputError(
            f"step {name!r} returned a value that is not JSON-serialisable: {exc}"
        ) from None
