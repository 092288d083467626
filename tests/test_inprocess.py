"""execute_steps and run_steps: steps run in the calling process, with no store."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import aiobgproc
from aiobgproc import InvalidSpecError, InvalidStateError, Process, ProcessInterruptedError, Step

STEPS = {
    "sync-function": Step("stepmods.basic:add", "a", 3),
    "async-function": Step("stepmods.basic:add_async", key="b", value=4),
    "sync-class": Step("stepmods.basic:Scale", "a", factor=10),
    "async-class": Step("stepmods.basic:ScaleAsync", "b", factor=100),
    "where": Step("stepmods.basic:whoami"),
}

PAUSING_STEPS = {
    "interrupt-flag": Step("stepmods.basic:add", "paused", interrupt=True),
    "interrupting-step": Step("stepmods.pausing:Review", "look"),
    "returned-interrupt": Step("stepmods.pausing:pause_if_asked"),
}


def _pausing_process(kind: str) -> list[Step]:
    return [Step("stepmods.basic:add", "before"), PAUSING_STEPS[kind], Step("stepmods.basic:seen")]


def _without_pid(output: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in output.items() if key != "os_pid"}


def test_execute_steps_runs_in_calling_process_and_returns_final_output() -> None:
    output = aiobgproc.execute_steps(STEPS, {"start": "here"})
    assert output == {"start": "here", "a": 30, "b": 400, "os_pid": os.getpid()}


async def test_run_steps_runs_in_calling_process_and_returns_final_output() -> None:
    output = await aiobgproc.run_steps(STEPS, {"start": "here"})
    assert output == {"start": "here", "a": 30, "b": 400, "os_pid": os.getpid()}


async def test_run_steps_runs_async_steps_on_the_calling_loop() -> None:
    output = await aiobgproc.run_steps([Step("stepmods.basic:loop_id")])
    assert output == {"loop": id(asyncio.get_running_loop())}


def test_execute_steps_accepts_a_process_and_callable_targets() -> None:
    from stepmods import basic

    process = Process([Step(basic.add, "n", 2), Step(basic.Scale, "n", factor=3)], timeout=5)
    assert aiobgproc.execute_steps(process) == {"n": 6}


def test_execute_steps_starts_with_empty_dict_and_none_means_empty_dict() -> None:
    assert aiobgproc.execute_steps([Step("stepmods.basic:seen")]) == {"seen": {}}
    assert aiobgproc.execute_steps(
        [Step("stepmods.basic:nothing"), Step("stepmods.basic:seen")], {"x": 1}
    ) == {"seen": {}}
    assert aiobgproc.execute_steps([Step("stepmods.basic:nothing")], {"x": 1}) == {}


@pytest.mark.parametrize("kind", list(PAUSING_STEPS))
def test_execute_steps_raises_process_interrupted_at_pausing_step(kind: str) -> None:
    with pytest.raises(ProcessInterruptedError) as caught:
        aiobgproc.execute_steps(_pausing_process(kind), {"pause": True})
    assert isinstance(caught.value, InvalidStateError)
    assert caught.value.step == "1"
    assert caught.value.output["before"] is True
    assert caught.value.output["pause"] is True


@pytest.mark.parametrize("kind", list(PAUSING_STEPS))
async def test_run_steps_raises_process_interrupted_at_pausing_step(kind: str) -> None:
    with pytest.raises(ProcessInterruptedError) as caught:
        await aiobgproc.run_steps(_pausing_process(kind), {"pause": True})
    assert isinstance(caught.value, InvalidStateError)
    assert caught.value.step == "1"
    assert caught.value.output["before"] is True


def test_process_interrupted_error_carries_the_paused_output() -> None:
    steps = {
        "review": Step("stepmods.pausing:Review", "note"),
        "after": Step("stepmods.basic:seen"),
    }
    with pytest.raises(ProcessInterruptedError) as caught:
        aiobgproc.execute_steps(steps, {"n": 1})
    assert caught.value.step == "review"
    assert _without_pid(caught.value.output) == {"n": 1, "note": "note"}
    assert aiobgproc.ProcessInterruptedError is ProcessInterruptedError


async def test_a_pause_at_the_last_step_returns_its_output() -> None:
    steps = {"review": Step("stepmods.pausing:Review", "note")}
    assert _without_pid(aiobgproc.execute_steps(steps, {"n": 1})) == {"n": 1, "note": "note"}
    assert _without_pid(await aiobgproc.run_steps(steps, {"n": 1})) == {"n": 1, "note": "note"}


async def test_execute_steps_runs_async_steps_even_inside_a_running_loop() -> None:
    output = aiobgproc.execute_steps([Step("stepmods.basic:loop_id")])
    assert output["loop"] != id(asyncio.get_running_loop())


@pytest.mark.parametrize("kind", list(PAUSING_STEPS))
def test_execute_steps_continues_through_pausing_step_when_asked(kind: str) -> None:
    output = aiobgproc.execute_steps(
        _pausing_process(kind), {"pause": True}, on_interrupt="continue"
    )
    seen = _without_pid(output["seen"])
    assert seen["before"] is True
    assert seen["pause"] is True


@pytest.mark.parametrize("kind", list(PAUSING_STEPS))
async def test_run_steps_continues_through_pausing_step_when_asked(kind: str) -> None:
    output = await aiobgproc.run_steps(
        _pausing_process(kind), {"pause": True}, on_interrupt="continue"
    )
    assert output["seen"]["before"] is True


def test_execute_steps_propagates_a_step_exception() -> None:
    with pytest.raises(ValueError, match="bad input: 7"):
        aiobgproc.execute_steps([Step("stepmods.failing:raise_value_error")], {"n": 7})


async def test_run_steps_propagates_a_step_exception() -> None:
    with pytest.raises(ValueError, match="bad input: 7"):
        await aiobgproc.run_steps([Step("stepmods.failing:raise_value_error")], {"n": 7})


@pytest.mark.parametrize(
    "target",
    ["stepmods.failing:return_set", "stepmods.failing:return_nan", "stepmods.failing:return_list"],
)
def test_execute_steps_rejects_a_result_that_cannot_be_stored(target: str) -> None:
    with pytest.raises((TypeError, ValueError), match="'0'"):
        aiobgproc.execute_steps([Step(target)])


@pytest.mark.parametrize(
    ("steps", "data"),
    [
        ([], None),
        ([Step("stepmods.basic:no_such_function")], None),
        ([Step("stepmods.basic:echo")], {"x": float("nan")}),
    ],
    ids=["no-steps", "unresolvable-target", "nan-data"],
)
def test_execute_steps_checks_the_spec_like_start(
    steps: list[Step], data: dict[str, Any] | None
) -> None:
    with pytest.raises(InvalidSpecError):
        aiobgproc.execute_steps(steps, data)
