"""Checks what list() is given, as start() checks its own: a bad filter is an
InvalidSpecError (ProcessNotFoundError for an unknown ``before``, from the store)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from ._start_options import check_meta, check_queue, check_short_text, meta_pairs, valid_id
from .errors import InvalidSpecError, ProcessNotFoundError
from .models import Status
from .store import ListFilter

_MAX_LIMIT: Final = 2**62  # more than any store holds: a store takes 64 bits


def list_filter(
    *,
    status: Status | str | Iterable[Status | str] | None,
    limit: Any,
    queue: Any,
    label: Any,
    key: Any,
    meta: Any,
    before: Any,
) -> ListFilter:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidSpecError(f"limit must be a whole number >= 1, not {limit!r}")
    statuses: list[Status] | None = None
    if status is not None:
        wanted = [status] if isinstance(status, str) else status
        try:
            statuses = [Status(item) for item in wanted]
        except (ValueError, TypeError):
            raise InvalidSpecError(
                f"unknown status in {status!r}; one of: {', '.join(Status)}"
            ) from None
    if before is not None:
        if not isinstance(before, str):
            raise InvalidSpecError(f"before must be a process id (a string), not {before!r}")
        if not valid_id(before):
            raise ProcessNotFoundError(before)
    pairs = meta_pairs(check_meta(meta))  # {}: no key to match, so every process matches
    return ListFilter(
        statuses=statuses,
        limit=min(limit, _MAX_LIMIT),
        queue=None if queue is None else check_queue(queue),
        label=check_short_text(label, "label"),
        key=check_short_text(key, "key"),
        meta=tuple(pairs),
        before=before,
    )
