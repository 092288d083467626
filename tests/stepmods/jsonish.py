"""Steps returning values that are not plain dicts/str/int but that JSON serialises fine."""

from __future__ import annotations

import collections
import enum
from typing import Any


class Color(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


def ordered_dict(data: dict[str, Any]) -> dict[str, Any]:
    return collections.OrderedDict(a=1, b=2)


def nested_defaultdict(data: dict[str, Any]) -> dict[str, Any]:
    return {"d": collections.defaultdict(list, a=[1])}


def str_enum_value(data: dict[str, Any]) -> dict[str, Any]:
    return {"color": Color.RED}


def int_enum_value(data: dict[str, Any]) -> dict[str, Any]:
    return {"size": Size.LARGE}


def tuple_value(data: dict[str, Any]) -> dict[str, Any]:
    return {"pair": (1, 2)}
