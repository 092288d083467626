"""The executor frames: what each side builds, and what the manager accepts."""

from __future__ import annotations

import marshal
from typing import Any

import pytest

from aiobgproc._wire import frames
from aiobgproc._wire.job import Job
from aiobgproc._wire.messages import Done, Failed, FrameError, Progress, Start, Unknown, parse


def roundtrip(frame: tuple[Any, ...]) -> tuple[Any, ...]:
    data = frames.encode(frame)
    assert int.from_bytes(data[: frames.HEADER], "big") == len(data) - frames.HEADER
    return frames.decode(data[frames.HEADER :])


def test_every_executor_frame_parses_to_its_message() -> None:
    output = marshal.dumps({"a": 1})
    assert parse(roundtrip(frames.start(2, "b"))) == Start(2, "b")
    assert parse(roundtrip(frames.progress(0.5, "half"))) == Progress(0.5, "half")
    assert parse(roundtrip(frames.done(1, "a", output))) == Done(1, "a", output, pause=False)
    assert parse(roundtrip(frames.interrupt(1, "a", output))) == Done(1, "a", output, pause=True)
    failed = parse(roundtrip(frames.error(0, "a", "KeyError", "'x'", "Traceback ...")))
    assert failed == Failed(0, "a", "KeyError", "'x'", "Traceback ...")


JOB: Job = {
    "process_id": "p",
    "attempt": 1,
    "sys_path": ["/x"],
    "steps": [{"name": "a", "target": "m:f", "args": [], "kwargs": {}, "interrupt": False}],
    "start": 0,
    "input": {"x": 1},
}


def test_manager_frames_name_their_kind() -> None:
    assert roundtrip(frames.job(JOB)) == ("job", JOB)
    assert roundtrip(frames.go()) == ("go",)
    assert roundtrip(frames.run({"A": "1"}, ["B"], None, JOB)) == (
        "run",
        {"A": "1"},
        ["B"],
        None,
        JOB,
    )
    assert roundtrip(frames.ack()) == ("ack",)
    assert roundtrip(frames.exit_now()) == ("exit",)


@pytest.mark.parametrize(
    "frame",
    [
        ("start", "one", "a"),  # not an index
        ("start", True, "a"),
        ("start", 1),  # too short
        ("done", 1, "a", "not bytes"),
        ("progress", "half", None),
        ("error", 1, "a"),
    ],
)
def test_a_frame_the_executor_does_not_send_is_refused(frame: tuple[Any, ...]) -> None:
    with pytest.raises(FrameError):
        parse(frame)


def test_a_frame_of_an_unknown_kind_is_told_apart_not_refused() -> None:
    # An executor of another version may say more than this manager knows: it is logged,
    # and the run goes on (as it did before the frames were typed).
    assert parse(("log", "hello")) == Unknown("log")


def test_garbage_does_not_decode() -> None:
    with pytest.raises(ValueError, match="malformed"):
        frames.decode(marshal.dumps([1, 2]))
