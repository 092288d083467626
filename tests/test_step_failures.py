"""Steps that fail: exceptions, results that cannot be stored, executors that die."""

from __future__ import annotations

import pytest

from aiobgproc import Manager, Process, ProcessInfo, Status, Step

WAIT = 30.0


async def run_to_end(manager: Manager, work: Process) -> ProcessInfo:
    process_id = await manager.start(work, {"n": 42})
    return await manager.wait_for(process_id, timeout=WAIT)


async def assert_manager_still_serves(manager: Manager) -> None:
    info = await run_to_end(manager, Process([Step("stepmods.basic:add", "after", "failure")]))
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"n": 42, "after": "failure"}


async def test_raising_step_makes_process_error_with_type_message_traceback_and_step(
    manager: Manager,
) -> None:
    info = await run_to_end(
        manager,
        Process(
            {
                "fine": Step("stepmods.basic:echo"),
                "validate": Step("stepmods.failing:raise_value_error"),
                "never": Step("stepmods.basic:add", "reached"),
            }
        ),
    )
    assert info.status is Status.ERROR
    assert info.finished_at is not None
    assert info.os_pid is None
    assert info.output is None
    error = info.error
    assert error is not None
    assert error.type == "ValueError"
    assert error.message == "bad input: 42"
    assert error.step == "validate"
    assert error.traceback is not None
    assert "raise ValueError(f\"bad input: {data.get('n')}\")" in error.traceback
    assert "failing.py" in error.traceback
    assert info.step == "validate"
    assert info.steps_done == 1


async def test_custom_exception_type_is_named_in_error(manager: Manager) -> None:
    info = await run_to_end(manager, Process({"explode": Step("stepmods.failing:Explode")}))
    assert info.status is Status.ERROR
    assert info.error is not None
    assert info.error.type in {"BoomError", "stepmods.failing.BoomError"}
    assert info.error.message == "kaboom"
    assert info.error.step == "explode"
    assert info.error.traceback is not None
    assert 'raise BoomError("kaboom")' in info.error.traceback


async def test_step_traceback_is_also_in_captured_output(manager: Manager) -> None:
    info = await run_to_end(manager, Process({"boom": Step("stepmods.failing:raise_value_error")}))
    assert info.status is Status.ERROR
    assert b"ValueError: bad input: 42" in await manager.output(info.id)


@pytest.mark.parametrize(
    ("target", "type_name"),
    [
        ("stepmods.failing:return_set", "set"),
        ("stepmods.failing:return_object", "Opaque"),
        ("stepmods.failing:return_nan", "float"),
        ("stepmods.failing:return_infinity", "float"),
    ],
)
async def test_non_serialisable_result_is_error_naming_step_and_type(
    manager: Manager, target: str, type_name: str
) -> None:
    info = await run_to_end(
        manager, Process({"produce": Step(target), "never": Step("stepmods.basic:add", "x")})
    )
    assert info.status is Status.ERROR
    assert info.error is not None
    assert info.error.step == "produce"
    assert "produce" in info.error.message
    assert type_name in info.error.message
    assert info.step == "produce"
    await assert_manager_still_serves(manager)


@pytest.mark.parametrize(
    ("target", "type_name"),
    [
        ("stepmods.failing:return_list", "list"),
        ("stepmods.failing:return_string", "str"),
        ("stepmods.failing:return_int", "int"),
    ],
)
async def test_result_that_is_not_a_dict_is_error(
    manager: Manager, target: str, type_name: str
) -> None:
    info = await run_to_end(manager, Process({"produce": Step(target)}))
    assert info.status is Status.ERROR
    assert info.output is None
    assert info.error is not None
    assert info.error.step == "produce"
    assert type_name in info.error.message
    assert "dict" in info.error.message


@pytest.mark.parametrize(
    ("target", "how"),
    [("stepmods.failing:exit_7", ("7",)), ("stepmods.failing:kill_self", ("SIGKILL", "9"))],
    ids=["exit-code", "signal"],
)
async def test_executor_that_dies_makes_process_error_and_manager_keeps_serving(
    manager: Manager, target: str, how: tuple[str, ...]
) -> None:
    info = await run_to_end(
        manager, Process({"prepare": Step("stepmods.basic:echo"), "die": Step(target)})
    )
    assert info.status is Status.ERROR
    assert info.os_pid is None
    assert info.error is not None
    assert info.error.step == "die"
    assert any(word in info.error.message for word in how), info.error.message
    await assert_manager_still_serves(manager)


async def test_an_executor_sending_garbage_is_ended_and_the_manager_keeps_serving(
    manager: Manager,
) -> None:
    """A frame that does not decode (a step wrote to the channel) ends the run as an
    error of that step; the executor is stopped, not waited for."""
    info = await run_to_end(manager, Process({"garble": Step("stepmods.failing:garble_channel")}))
    assert info.status is Status.ERROR
    assert info.os_pid is None
    assert info.error is not None
    assert info.error.step == "garble"
    assert info.error.type == "ExecutorProtocolError"
    assert "frame" in info.error.message, info.error.message
    await assert_manager_still_serves(manager)
