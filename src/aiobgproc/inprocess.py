"""Run steps in the calling process: no store, no subprocess (handy in tests and scripts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from . import _spec
from ._child.stepcall import await_it, invoke, resolve, step_output
from ._wire.job import StepSpec
from .errors import ProcessInterruptedError
from .models import Process, Step

OnInterrupt = Literal["raise", "continue"]


def _steps(steps: Process | Mapping[str, Step] | Sequence[Step]) -> list[StepSpec]:
    process = steps if isinstance(steps, Process) else Process(steps)
    checked: list[StepSpec] = _spec.process_spec(process)["steps"]
    return checked


def _call(spec: StepSpec, data: dict[str, Any]) -> tuple[Any, bool]:
    return invoke(resolve(spec["target"]), spec["args"], spec["kwargs"], data)


def _after_step(
    spec: StepSpec, result: Any, interrupting: bool, on_interrupt: OnInterrupt, last: bool
) -> dict[str, Any]:
    output, interrupt = step_output(spec["name"], result)
    pauses = interrupt or interrupting or spec["interrupt"]
    if pauses and not last and on_interrupt == "raise":
        raise ProcessInterruptedError(spec["name"], output)
    return output


def _run_coroutine(awaitable: Any) -> Any:
    """asyncio.run, or — when this thread already runs a loop — asyncio.run in a thread."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(await_it(awaitable))
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, await_it(awaitable)).result()


def execute_steps(
    steps: Process | Mapping[str, Step] | Sequence[Step],
    data: dict[str, Any] | None = None,
    *,
    on_interrupt: OnInterrupt = "raise",
) -> dict[str, Any]:
    """Run the steps one after another in this process and return the last one's output.

    A step that raises propagates its exception; a step that returns something JSON
    cannot carry raises StepOutputError (a TypeError and a ValueError). At a step that
    would pause the process (other than the last one), the default raises
    ProcessInterruptedError (an InvalidStateError carrying ``step`` and ``output``);
    ``on_interrupt="continue"`` goes straight on to the next step, as if proceeded with no
    data. A pause at the last step changes nothing: its output is returned. Async steps
    are run with ``asyncio.run`` (in a helper thread when called from a running loop).
    """
    current = _spec.check_data(data)
    checked = _steps(steps)
    for index, spec in enumerate(checked):
        result, interrupting = _call(spec, current)
        if hasattr(result, "__await__"):
            result = _run_coroutine(result)
        last = index == len(checked) - 1
        current = _after_step(spec, result, interrupting, on_interrupt, last)
    return current


async def run_steps(
    steps: Process | Mapping[str, Step] | Sequence[Step],
    data: dict[str, Any] | None = None,
    *,
    on_interrupt: OnInterrupt = "raise",
) -> dict[str, Any]:
    """Like ``execute_steps``, awaited: async steps run on the calling loop, sync steps inline."""
    current = _spec.check_data(data)
    checked = _steps(steps)
    for index, spec in enumerate(checked):
        result, interrupting = _call(spec, current)
        if hasattr(result, "__await__"):
            result = await result
        last = index == len(checked) - 1
        current = _after_step(spec, result, interrupting, on_interrupt, last)
    return current
