"""Trivial steps for the benchmarks (kept free of imports: we measure our overhead)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def noop(data: dict[str, Any]) -> dict[str, Any]:
    return data
