"""The pytest plugin, tested as a black box: a test file run by a real pytest subprocess."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
from aiobgproc import Command, Process, Step, Status
from aiobgproc.pytest_plugin import wait_for_status


async def test_manager_fixture_runs_a_command(aiobgproc_manager, aiobgproc_store):
    assert aiobgproc_store.exists()
    process_id = await aiobgproc_manager.start(Command(["sh", "-c", "echo plugged"]))
    info = await wait_for_status(aiobgproc_manager, process_id, "finished", timeout=20)
    assert info.status is Status.FINISHED
    assert await aiobgproc_manager.output(process_id) == b"plugged\\n"


async def test_wait_helper_fixture_waits_for_a_pause(aiobgproc_manager, aiobgproc_wait_for_status):
    process_id = await aiobgproc_manager.start(
        Process([Step("pluginsteps:double", interrupt=True)]), data={"x": 2}
    )
    info = await aiobgproc_wait_for_status(aiobgproc_manager, process_id, Status.INTERRUPTED)
    assert info.output == {"x": 4}


async def test_wait_helper_fails_when_the_deadline_passes(aiobgproc_manager):
    process_id = await aiobgproc_manager.start(Command(["sleep", "30"]))
    await wait_for_status(aiobgproc_manager, process_id, "finished", timeout=0.5)


async def test_wait_helper_fails_when_the_process_ends_otherwise(aiobgproc_manager):
    process_id = await aiobgproc_manager.start(Command(["false"]))
    await wait_for_status(aiobgproc_manager, process_id, "finished", timeout=20)
"""

STEPS = """
def double(data):
    return {"x": data["x"] * 2}
"""


def test_plugin_fixtures_and_wait_helper_work_in_a_user_project(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=USER_TESTS, pluginsteps=STEPS)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*is still running after 0.5 s, not finished*",
            "*ended error, not finished*",
        ]
    )


def test_plugin_registers_no_autouse_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="def test_nothing_requested(request):\n"
        "    assert not any(name.startswith('aiobgproc') for name in request.fixturenames)\n"
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
