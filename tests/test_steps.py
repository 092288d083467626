"""Step processes: spec checks in start(), the executor process, data flow, output, progress."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from aiobgproc import InvalidSpecError, Manager, Process, ProcessInfo, Status, Step
from helpers.storedb import execute, query
from stepmods import basic

WAIT = 30.0  # seconds: a generous backstop; every wait returns as soon as its condition holds


async def poll_info(
    manager: Manager,
    process_id: str,
    condition: Callable[[ProcessInfo], bool],
    timeout: float = WAIT,
) -> ProcessInfo:
    """Re-read the process until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        info = await manager.info(process_id)
        if condition(info):
            return info
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s; last info: {info}")
        await asyncio.sleep(0.01)


async def run_to_end(
    manager: Manager, work: Process, data: dict[str, Any] | None = None
) -> ProcessInfo:
    process_id = await manager.start(work, data)
    return await manager.wait_for(process_id, timeout=WAIT)


# -- specs checked by start() ----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "stepmods.basic.add",
        "stepmods.basic:",
        ":add",
        "stepmods basic:add",
        "stepmods.basic:add:extra",
        "1stepmods.basic:add",
        "stepmods..basic:add",
        "",
    ],
)
async def test_start_rejects_step_target_without_module_colon_name_syntax(
    manager: Manager, target: str
) -> None:
    with pytest.raises(InvalidSpecError, match="target"):
        await manager.start(Process([Step(target, "k")]))
    assert await manager.list() == []


@pytest.mark.parametrize(
    "target",
    ["stepmods.no_such_module:add", "stepmods.basic:no_such_function", "no_such_package.x:y"],
)
async def test_start_rejects_step_target_that_cannot_be_imported(
    manager: Manager, target: str
) -> None:
    with pytest.raises(InvalidSpecError):
        await manager.start(Process({"a": Step(target)}))
    assert await manager.list() == []


class _SameNameTwice(Mapping[str, Step]):
    """A mapping whose keys repeat: the only way to hand Process two steps of one name."""

    def __init__(self, step: Step) -> None:
        self.step = step

    def __getitem__(self, key: str) -> Step:
        return self.step

    def __iter__(self) -> Iterator[str]:
        return iter(["fetch", "fetch"])

    def __len__(self) -> int:
        return 2


async def test_start_rejects_two_steps_with_the_same_name(manager: Manager) -> None:
    with pytest.raises(InvalidSpecError, match="fetch"):
        await manager.start(Process(_SameNameTwice(Step("stepmods.basic:echo"))))
    assert await manager.list() == []


@pytest.mark.parametrize("steps", [[], {}], ids=["empty-list", "empty-mapping"])
async def test_start_rejects_process_without_steps(
    manager: Manager, steps: list[Step] | dict[str, Step]
) -> None:
    with pytest.raises(InvalidSpecError):
        await manager.start(Process(steps))
    assert await manager.list() == []


@pytest.mark.parametrize(
    "data",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": [1.0, float("-inf")]},
        {"x": {1, 2}},
        {"x": object()},
        {1: "non-string key"},
    ],
    ids=["nan", "infinity", "nested-negative-infinity", "set", "object", "int-key"],
)
async def test_start_rejects_data_that_is_not_json_serialisable(
    manager: Manager, data: dict[Any, Any]
) -> None:
    with pytest.raises(InvalidSpecError):
        await manager.start(Process([Step("stepmods.basic:echo")]), data)
    assert await manager.list() == []


async def test_start_rejects_data_that_is_not_a_dict(manager: Manager) -> None:
    with pytest.raises(InvalidSpecError):
        await manager.start(Process([Step("stepmods.basic:echo")]), [1, 2])  # type: ignore[arg-type]
    assert await manager.list() == []


@pytest.mark.parametrize(
    "step",
    [Step("stepmods.basic:add", "k", float("nan")), Step("stepmods.basic:add", "k", value={1})],
    ids=["nan-arg", "set-kwarg"],
)
async def test_start_rejects_step_arguments_that_are_not_json_serialisable(
    manager: Manager, step: Step
) -> None:
    with pytest.raises(InvalidSpecError):
        await manager.start(Process([step]))
    assert await manager.list() == []


async def test_invalid_spec_error_is_a_value_error(manager: Manager) -> None:
    with pytest.raises(ValueError, match="step"):
        await manager.start(Process([]))


async def test_start_rejects_lambda_and_local_function_targets(manager: Manager) -> None:
    def local(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(InvalidSpecError, match="lambda"):
        await manager.start(Process([Step(lambda data: data)]))
    with pytest.raises(InvalidSpecError):
        await manager.start(Process([Step(local)]))
    assert await manager.list() == []


async def test_callable_targets_are_stored_as_import_paths_and_run(manager: Manager) -> None:
    process_id = await manager.start(
        Process({"add": Step(basic.add, "n", 2), "scale": Step(basic.Scale, "n", factor=5)})
    )
    record = await manager.store.get(process_id)
    assert record is not None
    assert [step["target"] for step in record.spec["steps"]] == [
        "stepmods.basic:add",
        "stepmods.basic:Scale",
    ]
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED
    assert info.output == {"n": 10}


# -- running in an executor ------------------------------------------------------------------


async def test_steps_run_in_a_separate_executor_process(manager: Manager, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    process_id = await manager.start(
        Process({"wait": Step("stepmods.basic:gated")}), {"gate": str(gate)}
    )
    running = await poll_info(manager, process_id, lambda info: info.os_pid is not None)
    assert running.status is Status.RUNNING
    assert running.os_pid != os.getpid()
    gate.touch()
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED
    assert info.output is not None
    assert info.output["os_pid"] == running.os_pid
    assert info.output["os_pid"] != os.getpid()
    assert info.os_pid is None


async def test_executor_sees_the_managers_environment_at_run_time(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Changed after the manager (and its warm executor) started: each run sees it as it is.
    work = Process([Step("stepmods.basic:environ")])
    names = ["AIOBGPROC_TEST_ADDED", "AIOBGPROC_TEST_REMOVED", "AIOBGPROC_ATTEMPT"]
    monkeypatch.setenv("AIOBGPROC_TEST_REMOVED", "here")
    first = await run_to_end(manager, work, {"names": names})
    assert first.output == {
        "AIOBGPROC_TEST_ADDED": None,
        "AIOBGPROC_TEST_REMOVED": "here",
        "AIOBGPROC_ATTEMPT": "1",
    }
    monkeypatch.setenv("AIOBGPROC_TEST_ADDED", "new")
    monkeypatch.delenv("AIOBGPROC_TEST_REMOVED")
    info = await run_to_end(manager, work, {"names": names})
    assert info.output == {
        "AIOBGPROC_TEST_ADDED": "new",
        "AIOBGPROC_TEST_REMOVED": None,
        "AIOBGPROC_ATTEMPT": "1",
    }


async def test_sync_and_async_functions_and_classes_pass_data_along(manager: Manager) -> None:
    info = await run_to_end(
        manager,
        Process(
            {
                "sync-function": Step("stepmods.basic:add", "a", 3),
                "async-function": Step("stepmods.basic:add_async", key="b", value=4),
                "sync-class": Step("stepmods.basic:Scale", "a", factor=10),
                "async-class": Step("stepmods.basic:ScaleAsync", "b", factor=100),
            }
        ),
        {"start": "here"},
    )
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"start": "here", "a": 30, "b": 400}
    assert info.steps_done == 4
    assert info.steps_total == 4
    assert info.step == "async-class"


async def test_first_step_receives_empty_dict_when_start_has_no_data(manager: Manager) -> None:
    info = await run_to_end(manager, Process([Step("stepmods.basic:seen")]))
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"seen": {}}


async def test_step_returning_none_hands_an_empty_dict_on(manager: Manager) -> None:
    info = await run_to_end(
        manager,
        Process([Step("stepmods.basic:nothing"), Step("stepmods.basic:seen")]),
        {"dropped": True},
    )
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"seen": {}}


async def test_last_step_returning_none_makes_output_empty_dict(manager: Manager) -> None:
    info = await run_to_end(manager, Process([Step("stepmods.basic:nothing")]), {"x": 1})
    assert info.status is Status.FINISHED, info.error
    assert info.output == {}


async def test_steps_given_as_a_list_are_named_by_position(manager: Manager) -> None:
    process_id = await manager.start(
        Process(
            [
                Step("stepmods.basic:echo"),
                Step("stepmods.basic:echo"),
                Step("stepmods.basic:nothing"),
            ]
        )
    )
    record = await manager.store.get(process_id)
    assert record is not None
    assert [step["name"] for step in record.spec["steps"]] == ["0", "1", "2"]
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.step == "2"


async def test_failing_step_in_a_list_is_reported_by_its_position(manager: Manager) -> None:
    info = await run_to_end(
        manager, Process([Step("stepmods.basic:echo"), Step("stepmods.failing:raise_value_error")])
    )
    assert info.status is Status.ERROR
    assert info.error is not None
    assert info.error.step == "1"


async def test_large_data_travels_through_steps(manager: Manager) -> None:
    blob = "a" * (5 * 1024 * 1024 - 2) + "yz"
    info = await run_to_end(
        manager,
        Process(
            {"pass-through": Step("stepmods.basic:echo"), "measure": Step("stepmods.basic:measure")}
        ),
        {"blob": blob},
    )
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"length": len(blob), "head": "aaaaaaaa", "tail": "aaaaaayz"}


async def test_large_output_is_the_process_output(manager: Manager) -> None:
    blob = "b" * (5 * 1024 * 1024)
    info = await run_to_end(manager, Process([Step("stepmods.basic:echo")]), {"blob": blob})
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"blob": blob}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("stepmods.jsonish:ordered_dict", {"a": 1, "b": 2}),
        ("stepmods.jsonish:nested_defaultdict", {"d": {"a": [1]}}),
        ("stepmods.jsonish:str_enum_value", {"color": "red"}),
        ("stepmods.jsonish:int_enum_value", {"size": 3}),
        ("stepmods.jsonish:tuple_value", {"pair": [1, 2]}),
    ],
    ids=["ordered-dict", "defaultdict", "str-enum", "int-enum", "tuple"],
)
async def test_result_that_json_can_serialise_is_accepted_as_json(
    manager: Manager, target: str, expected: dict[str, Any]
) -> None:
    # The contract asks for a JSON-serialisable dict: dict subclasses and int/str enum
    # members are that (json.dumps takes them), so the process must finish with their JSON.
    info = await run_to_end(manager, Process({"produce": Step(target)}))
    assert info.status is Status.FINISHED, info.error
    assert info.output == expected
    assert json.dumps(info.output) == json.dumps(expected)


# -- what steps print ------------------------------------------------------------------------


async def test_print_is_stdout_sys_stderr_is_stderr_and_a_childs_output_is_captured(
    manager: Manager,
) -> None:
    info = await run_to_end(manager, Process({"chatter": Step("stepmods.noisy:chatter")}))
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"said": 3}
    stdout = b"line on stdout\nline from a child\n"
    assert await manager.output(info.id, stream="stdout") == stdout
    assert await manager.output(info.id, stream="stderr") == b"line on stderr\n"
    # Across the two pipes the order is the reads'; each stream's own order is exact.
    assert sorted((await manager.output(info.id)).splitlines()) == sorted(
        (stdout + b"line on stderr\n").splitlines()
    )


async def test_printing_result_lookalikes_does_not_change_the_result(manager: Manager) -> None:
    info = await run_to_end(
        manager,
        Process(
            {"forge": Step("stepmods.noisy:forge_results"), "after": Step("stepmods.basic:seen")}
        ),
    )
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"seen": {"genuine": True}}
    output = await manager.output(info.id)
    assert b'{"forged": true}' in output


# -- progress while running ------------------------------------------------------------------


async def test_info_shows_step_and_progress_while_running(manager: Manager, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    process_id = await manager.start(
        Process(
            {
                "prepare": Step("stepmods.basic:add", "prepared"),
                "work": Step("stepmods.basic:gated"),
                "finish": Step("stepmods.basic:add", "finished"),
            }
        ),
        {"gate": str(gate)},
    )
    running = await poll_info(manager, process_id, lambda info: info.progress == 0.5)
    assert running.status is Status.RUNNING
    assert running.step == "work"
    assert running.steps_done == 1
    assert running.steps_total == 3
    assert running.progress_message == "half"
    assert running.os_pid is not None
    gate.touch()
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.steps_done == 3
    assert info.output is not None
    assert info.output["prepared"] is True
    assert info.output["finished"] is True


# -- timeouts --------------------------------------------------------------------------------


def _alive(os_pid: int) -> bool:
    try:
        return psutil.Process(os_pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _assert_timeout_kills_tree(manager: Manager, process_id: str, pids_file: Path) -> None:
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.TIMEOUT
    assert info.os_pid is None
    assert info.error is not None
    assert info.finished_at is not None
    executor, child = (int(word) for word in (await asyncio.to_thread(pids_file.read_text)).split())
    assert executor != os.getpid()
    deadline = time.monotonic() + 10.0
    while (_alive(executor) or _alive(child)) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not _alive(executor)
    assert not _alive(child)


async def test_process_timeout_stops_executor_and_its_children(
    manager: Manager, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()
    process_id = await manager.start(
        Process({"sleep": Step("stepmods.basic:sleep_with_child")}, timeout=1),
        {"pids": str(pids)},
    )
    await _assert_timeout_kills_tree(manager, process_id, pids)
    assert time.monotonic() - started < 15.0


async def test_start_timeout_overrides_the_process_timeout(
    manager: Manager, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    process_id = await manager.start(
        Process({"sleep": Step("stepmods.basic:sleep_with_child")}, timeout=600),
        {"pids": str(pids)},
        timeout=1,
    )
    await _assert_timeout_kills_tree(manager, process_id, pids)
    info = await manager.info(process_id)
    assert info.timeout == 1


async def test_manager_keeps_serving_after_a_timeout(manager: Manager, tmp_path: Path) -> None:
    process_id = await manager.start(
        Process({"sleep": Step("stepmods.basic:sleep_with_child")}, timeout=0.5),
        {"pids": str(tmp_path / "pids")},
    )
    assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.TIMEOUT
    info = await run_to_end(manager, Process([Step("stepmods.basic:add", "again")]))
    assert info.status is Status.FINISHED
    assert info.output == {"again": True}


def test_the_import_path_sent_to_executors_follows_sys_path_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative sys.path entries ("" is the current directory) are resolved where start()
    runs, each time: the cached answer must not outlive a chdir or a sys.path change."""
    from aiobgproc._spec import import_path

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setattr(sys, "path", ["", "lib", str(tmp_path)])
    monkeypatch.chdir(first)
    assert import_path() == [str(first), str(first / "lib"), str(tmp_path)]
    monkeypatch.chdir(second)
    assert import_path() == [str(second), str(second / "lib"), str(tmp_path)]
    sys.path.append("/opt/more")
    assert import_path()[-1] == "/opt/more"
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert import_path() == [str(tmp_path)]
    returned = import_path()
    returned.append("mutated")  # a copy: the next caller is not affected
    assert import_path() == [str(tmp_path)]


async def test_a_process_stored_by_an_earlier_version_without_a_path_still_runs(
    store_url: str,
) -> None:
    """Specs live on in the store: one written before processes recorded the starter's
    sys.path (and its working directory) must run as it did then."""
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(Process([Step("stepmods.basic:echo")]), {"x": 1})
    spec = query(store_url, "SELECT spec FROM processes WHERE id = ?", (process_id,))[0][0]
    old = json.loads(spec)
    del old["path"], old["cwd"]
    execute(store_url, "UPDATE processes SET spec = ? WHERE id = ?", (json.dumps(old), process_id))
    async with Manager(store_url) as manager:
        info = await manager.wait_for(process_id, timeout=30)
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"x": 1}
