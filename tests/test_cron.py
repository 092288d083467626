"""The crontab parser: a table of known expressions and their next times, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiobgproc import InvalidSpecError
from aiobgproc._cron import parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (expression, after, the next times)
KNOWN = [
    ("* * * * *", "2026-12-07T10:15:30", ["2026-12-07T10:16", "2026-12-07T10:17"]),
    ("*/15 * * * *", "2026-12-07T10:15:00", ["2026-12-07T10:30", "2026-12-07T10:45"]),
    ("0 * * * *", "2026-12-07T10:00:00", ["2026-12-07T11:00", "2026-12-07T12:00"]),
    ("@hourly", "2026-12-07T23:59:59", ["2026-12-08T00:00", "2026-12-08T01:00"]),
    ("30 2 * * *", "2026-12-07T03:00", ["2026-12-08T02:30", "2026-12-09T02:30"]),
    ("@daily", "2026-12-31T12:00", ["2027-01-01T00:00", "2027-01-02T00:00"]),
    ("0 9 * * mon-fri", "2026-12-04T10:00", ["2026-12-07T09:00", "2026-12-08T09:00"]),
    ("0 0 * * 0", "2026-12-07T00:00", ["2026-12-13T00:00", "2026-12-20T00:00"]),
    ("0 0 * * 7", "2026-12-07T00:00", ["2026-12-13T00:00", "2026-12-20T00:00"]),
    ("@weekly", "2026-12-07T00:00", ["2026-12-13T00:00", "2026-12-20T00:00"]),
    ("0 0 1 * *", "2026-12-07T00:00", ["2027-01-01T00:00", "2027-02-01T00:00"]),
    ("@monthly", "2026-01-31T00:00", ["2026-02-01T00:00", "2026-03-01T00:00"]),
    ("0 0 31 * *", "2026-01-31T00:00", ["2026-03-31T00:00", "2026-05-31T00:00"]),
    ("0 0 29 2 *", "2026-01-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
    ("@yearly", "2026-12-07T00:00", ["2027-01-01T00:00", "2028-01-01T00:00"]),
    ("5,10-12 1 * jan,jul *", "2026-12-07T00:00", ["2027-01-01T01:05", "2027-01-01T01:10"]),
    ("0 12 1-7/3 * *", "2026-12-01T12:00", ["2026-12-04T12:00", "2026-12-07T12:00"]),
    ("0 8/6 * * *", "2026-12-07T09:00", ["2026-12-07T14:00", "2026-12-07T20:00"]),
    # Both days restricted: either matches (the 13th, or a Friday).
    ("0 0 13 * fri", "2026-12-07T00:00", ["2026-12-11T00:00", "2026-12-13T00:00"]),
    # A day field that starts with "*" counts as unrestricted: both must match (odd Mondays).
    ("0 0 */2 * mon", "2026-12-06T12:00", ["2026-12-07T00:00", "2026-12-21T00:00"]),
    ("59 23 31 12 *", "2026-12-31T23:59", ["2027-12-31T23:59", "2028-12-31T23:59"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), KNOWN)
def test_next_times_of_known_expressions(expression: str, after: str, expected: list[str]) -> None:
    cron = parse(expression)
    moment = at(after)
    found = []
    for _ in expected:
        moment = cron.next_after(moment)
        found.append(moment.strftime("%Y-%m-%dT%H:%M"))
    assert found == expected


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "a * * * *",
        "* * * foo *",
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "@every",
        "-1 * * * *",
        "1,,2 * * * *",
    ],
)
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(InvalidSpecError):
        parse(expression)


@pytest.mark.parametrize("value", [None, 5, b"* * * * *", ["*"] * 5])
def test_a_crontab_is_a_string(value: object) -> None:
    with pytest.raises(InvalidSpecError):
        parse(value)
