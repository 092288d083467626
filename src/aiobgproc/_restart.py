"""restart(): a new process with the same work as an ended one, from its first step or from
a later one whose predecessors' committed outputs it reuses (nothing before it runs again)."""

from __future__ import annotations

from typing import Any

from . import _clock, _spec
from ._start_options import Placement, new_process, valid_id
from .errors import InvalidSpecError, InvalidStateError, ProcessNotFoundError
from .store import NewProcess, Store


async def restart_process(
    store: Store, process_id: object, data: object, from_step: object
) -> NewProcess:
    """The process that restarts ``process_id`` (not stored yet). ProcessNotFoundError,
    InvalidStateError (not ended; the step before ``from_step`` not committed) or
    InvalidSpecError (bad data; ``from_step`` on a command, or not one of its steps)."""
    if not valid_id(process_id):
        raise ProcessNotFoundError(process_id)
    assert isinstance(process_id, str)
    record = await store.get(process_id)
    if record is None:
        raise ProcessNotFoundError(process_id)
    payload = None if data is None else _spec.check_data(data)
    index = 0
    if from_step is not None:
        if record.kind != "process":
            raise InvalidSpecError("from_step is for step processes: a command restarts whole")
        names = [step["name"] for step in record.spec["steps"]]
        if not isinstance(from_step, str) or from_step not in names:
            raise InvalidSpecError(
                f"process {process_id} has no step {from_step!r}; its steps: {', '.join(names)}"
            )
        index = names.index(from_step)
    if not record.status.is_terminal:
        raise InvalidStateError(
            f"process {process_id} is {record.status}: only an ended process can be restarted"
        )
    original: dict[str, Any] = await store.start_data(process_id) or {}
    first_input: dict[str, Any] = original if payload is None else payload
    if index > 0:
        committed = {item[0]: item[3] for item in await store.step_outputs(process_id)}
        before = record.spec["steps"][index - 1]["name"]
        if index - 1 not in committed:
            raise InvalidStateError(
                f"process {process_id} did not commit step {before!r}: it cannot restart"
                f" from {from_step!r}"
            )
        first_input = {**committed[index - 1], **(payload or {})}
    where = Placement(
        label=record.label,
        meta=record.meta,
        queue=record.queue,
        priority=record.priority,
    )
    return new_process(
        record.spec,  # type: ignore[arg-type]
        first_input,
        record.timeout,
        where,
        _clock.wall(),
        start_data=original if index > 0 and payload is None else first_input,
        restarted_from=process_id,
        step_index=index,
    )
