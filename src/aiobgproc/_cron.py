"""Five-field crontab expressions (minute hour day-of-month month day-of-week), in UTC.

A small parser rather than a dependency: the syntax is Vixie cron's, which fits in a page
(croniter, the usual library, went unmaintained in 2024). Each field is ``*``, a number, a
range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``, or a comma-separated list of them;
months and days of the week also take names (``jan``, ``mon``), and 7 is Sunday as 0 is.
``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and
``@hourly`` stand for their usual expressions. As in cron, when both the day of the month
and the day of the week are restricted, a day matching either one matches.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from .errors import InvalidSpecError

_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS: Final = {name.lower(): index for index, name in enumerate(calendar.month_abbr) if name}
_DAYS: Final = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# (name, lowest, highest, names)
_FIELDS: Final[tuple[tuple[str, int, int, dict[str, int]], ...]] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_SEARCH_DAYS: Final = 366 * 8  # every calendar repeats within 8 years (29 Feb included)


@dataclass(frozen=True, slots=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is "*"
    any_weekday: bool  # day of week is "*"

    def _day_matches(self, moment: datetime) -> bool:
        in_month = moment.day in self.days
        weekday = (moment.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
        in_week = weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after ``moment`` (UTC)."""
        current = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = current + timedelta(days=_SEARCH_DAYS)
        while current < limit:
            if current.month not in self.months:
                year, month = (
                    (current.year + 1, 1)
                    if current.month == 12
                    else (
                        current.year,
                        current.month + 1,
                    )
                )
                current = current.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(current):
                current = current.replace(hour=0, minute=0) + timedelta(days=1)
            elif current.hour not in self.hours:
                current = current.replace(minute=0) + timedelta(hours=1)
            elif current.minute not in self.minutes:
                current += timedelta(minutes=1)
            else:
                return current
        raise InvalidSpecError(f"crontab {self.expression!r} never matches a date")


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    number = names.get(text.lower()) if names else None
    if number is None:
        if not (text.isascii() and text.isdigit()):
            raise InvalidSpecError(f"crontab {field}: {text!r} is not a number")
        number = int(text)
    if not low <= number <= high:
        raise InvalidSpecError(f"crontab {field}: {number} is outside {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) < 1:
                raise InvalidSpecError(f"crontab {field}: step {step_text!r} must be >= 1")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start_text, _, end_text = span.partition("-")
            first = _value(start_text, field, low, high, names)
            last = _value(end_text, field, low, high, names)
            if first > last:
                raise InvalidSpecError(f"crontab {field}: range {span!r} runs backwards")
        else:
            first = _value(span, field, low, high, names)
            last = high if slash else first  # "a/n": from a to the end, every n
        found.update(range(first, last + 1, step))
    return found


def parse(expression: object) -> Cron:
    """A crontab expression, checked: InvalidSpecError says what is wrong."""
    if not isinstance(expression, str):
        raise InvalidSpecError(f"cron must be a crontab string, not {expression!r}")
    text = _MACROS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise InvalidSpecError(
            f"crontab {expression!r} must have 5 fields (minute hour day month weekday)"
        )
    values = [
        _field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = {day % 7 for day in values[4]}
    cron = Cron(
        expression=expression,
        minutes=frozenset(values[0]),
        hours=frozenset(values[1]),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=frozenset(weekdays),
        any_day=parts[2].startswith("*"),  # as cron: "*/2" leaves the day unrestricted
        any_weekday=parts[4].startswith("*"),
    )
    cron.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # refuses "0 0 30 2 *"
    return cron
