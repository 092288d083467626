"""What the executor says, read by the manager: typed messages parsed from frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import frames


class FrameError(Exception):
    """The executor sent something that is not a frame we know (a step wrote to the channel,
    say)."""


@dataclass(frozen=True, slots=True)
class Start:
    index: int
    name: str


@dataclass(frozen=True, slots=True)
class Progress:
    fraction: float
    message: str | None


@dataclass(frozen=True, slots=True)
class Done:
    index: int
    name: str
    output: bytes
    """marshal bytes of the step's dict, checked by the manager before it is stored."""
    pause: bool
    """An ``interrupt`` frame: the process pauses after this step."""


@dataclass(frozen=True, slots=True)
class Failed:
    index: int
    name: str
    error_type: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame of a kind this manager does not know (an executor of another version, say):
    logged and left alone, as the frames it knows go on."""

    kind: str


Message = Start | Progress | Done | Failed | Unknown


def parse(frame: tuple[Any, ...]) -> Message:
    """The message ``frame`` carries; FrameError when a known kind is malformed."""
    kind, args = frame[0], frame[1:]
    try:
        if kind == frames.PROGRESS:
            fraction, message = args
            return Progress(float(fraction), None if message is None else str(message))
        if kind == frames.START:
            index, name = args
            return Start(_int(index), str(name))
        if kind in (frames.DONE, frames.INTERRUPT):
            index, name, output = args
            if not isinstance(output, bytes):
                raise TypeError("the output is not bytes")
            return Done(_int(index), str(name), output, pause=kind == frames.INTERRUPT)
        if kind == frames.ERROR:
            index, name, error_type, message, traceback = args
            return Failed(_int(index), str(name), str(error_type), str(message), str(traceback))
    except (ValueError, TypeError) as exc:
        raise FrameError(f"a malformed {kind!r} frame: {exc}") from None
    return Unknown(str(kind))


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a step index")
    return value
