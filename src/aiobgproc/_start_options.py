"""Checks what start() and list() are given to describe, queue and schedule a process (label,
meta, key, queue, priority, delay or at, after): every bad value is an InvalidSpecError,
raised before anything reaches the store."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from . import _clock, _spec
from ._seconds import check_seconds
from ._wire.job import WorkSpec
from .errors import InvalidSpecError, ProcessNotFoundError
from .store import NewProcess

DEFAULT_QUEUE: Final = "default"
MAX_TEXT: Final = 200  # label and key
MAX_PRIORITY: Final = 1000
MAX_AFTER: Final = 1000  # dependencies of one process
_QUEUE_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC).timestamp()  # a later run_at is no time at all
_EARLIEST: Final = datetime(1, 1, 2, tzinfo=UTC).timestamp()  # an earlier one no date at all


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and when a new process runs, and how it is described: start()'s options, checked."""

    label: str | None = None
    meta: dict[str, Any] | None = None
    key: str | None = None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    run_at: float | None = None
    after: tuple[str, ...] = ()


def check_short_text(value: object, what: str) -> str | None:
    """None, or a string of 1 to 200 characters (no NUL: neither store could keep it)."""
    if value is None:
        return None
    text = _spec.check_text(value, what)
    if not 1 <= len(text) <= MAX_TEXT:
        raise InvalidSpecError(f"{what} must be 1 to {MAX_TEXT} characters, not {len(text)}")
    try:
        text.encode()
    except UnicodeError:
        raise InvalidSpecError(f"{what} is not valid text (a lone surrogate)") from None
    return text


def check_queue(value: object) -> str:
    if not isinstance(value, str) or not _QUEUE_RE.match(value):
        raise InvalidSpecError(
            f"a queue name is 1-64 characters of A-Z a-z 0-9 _ . -, not {value!r}"
        )
    return value


def check_queue_names(value: object) -> tuple[str, ...] | None:
    """Manager(queues=): None (every queue), one name, or several."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Iterable) or isinstance(names, bytes | Mapping):
        raise InvalidSpecError(f"queues must be a list of queue names or None, not {value!r}")
    checked = tuple(dict.fromkeys(check_queue(name) for name in names))
    if not checked:
        raise InvalidSpecError("queues must name at least one queue (None: every queue)")
    return checked


def check_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpecError(f"priority must be a whole number, not {value!r}")
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidSpecError(
            f"priority must be in [{-MAX_PRIORITY}, {MAX_PRIORITY}], not {value!r}"
        )
    return value


def check_meta(value: object) -> dict[str, Any] | None:
    """None, or a JSON object (a mapping with string keys), as JSON carries it."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidSpecError(f"meta must be a dict (a JSON object), not {type(value).__name__}")
    as_dict = dict(value)
    for name in as_dict:
        # Each key is also indexed as text of its own (list(meta=)): text both stores keep.
        if not isinstance(name, str) or "\x00" in name:
            raise InvalidSpecError(f"meta keys must be strings without NUL, not {name!r}")
        try:
            name.encode()
        except UnicodeError:
            raise InvalidSpecError(f"meta key {name!r} is not valid text") from None
    loaded: dict[str, Any] = json.loads(_spec.dump_json(as_dict, "meta"))
    return loaded


def canonical(value: Any) -> str:
    """A JSON value as the text list(meta=) compares: keys sorted, and a whole float written as
    the integer it equals (1.0 matches 1, as in Python; true does not match 1)."""
    return json.dumps(_whole(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {name: _whole(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value


def meta_pairs(meta: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The (key, canonical value) pairs a meta filter or a process's meta index holds. A key
    or value longer than ``_INDEXED_TEXT`` is indexed as its SHA-256 (an index entry has a
    size limit: ~2.7 kB in PostgreSQL); equal texts still give equal digests."""
    if meta is None:
        return []
    return [(_indexable(name), _indexable(canonical(value))) for name, value in meta.items()]


_INDEXED_TEXT: Final = 256


def _indexable(text: str) -> str:
    if len(text) <= _INDEXED_TEXT:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def run_at(delay: object, at: object, now: float) -> float | None:
    """When a process may be claimed first: now + ``delay``, or ``at`` (not both)."""
    if delay is not None and at is not None:
        raise InvalidSpecError("give delay or at, not both")
    if delay is not None:
        when = now + check_seconds(delay, "delay")
    elif at is not None:
        if not isinstance(at, datetime):
            raise InvalidSpecError(f"at must be a datetime, not {type(at).__name__}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidSpecError("at must be a timezone-aware datetime (e.g. in UTC), not naive")
        when = at.timestamp()
    else:
        return None
    if not _EARLIEST <= when < _LATEST:
        raise InvalidSpecError(f"{'delay' if delay is not None else 'at'} is outside years 1-9999")
    return when


def valid_id(value: object) -> bool:
    """Whether ``value`` could be a stored id or name: a non-empty string both stores can
    keep (no NUL, no lone surrogate). Anything else names nothing."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeError:
        return False
    return True


def check_after(value: object) -> tuple[str, ...]:
    """Process ids (one id as a string, or several); each must name a process
    (ProcessNotFoundError otherwise, from the store)."""
    ids = [value] if isinstance(value, str) else value
    if value is None:
        return ()
    if not isinstance(ids, Iterable) or isinstance(ids, bytes | Mapping):
        raise InvalidSpecError(f"after must be a list of process ids, not {value!r}")
    checked: dict[str, None] = {}
    for item in ids:
        if not isinstance(item, str):
            raise InvalidSpecError(f"after must hold process ids (strings), not {item!r}")
        if not valid_id(item):
            raise ProcessNotFoundError(item)
        checked[item] = None
        if len(checked) > MAX_AFTER:
            raise InvalidSpecError(f"a process may wait for at most {MAX_AFTER} others")
    return tuple(checked)


def placement(
    *,
    label: object,
    meta: object,
    key: object,
    queue: object,
    priority: object,
    delay: object,
    at: object,
    after: object,
    now: float,
) -> Placement:
    return Placement(
        label=check_short_text(label, "label"),
        meta=check_meta(meta),
        key=check_short_text(key, "key"),
        queue=check_queue(queue),
        priority=check_priority(priority),
        run_at=run_at(delay, at, now),
        after=check_after(after),
    )


def new_process_id() -> str:
    # Time-ordered (milliseconds first) then random: sorts by creation, never collides.
    millis = int(_clock.wall() * 1000)
    return f"{millis:012x}{uuid.uuid4().hex[:20]}"


def new_process(
    spec: WorkSpec,
    data: dict[str, Any],
    timeout: float | None,
    where: Placement,
    now: float,
    **extra: Any,
) -> NewProcess:
    """The process start() (or a restart, or a schedule) stores."""
    return NewProcess(
        id=new_process_id(),
        kind=spec["kind"],
        spec=spec,
        input=data,
        timeout=timeout,
        steps_total=len(spec["steps"]) if spec["kind"] == "process" else 0,
        created_at=now,
        label=where.label,
        meta=where.meta,
        key=where.key,
        queue=where.queue,
        priority=where.priority,
        run_at=where.run_at,
        after=where.after,
        meta_pairs=tuple(meta_pairs(where.meta)),
        **extra,
    )
