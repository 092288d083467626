"""Steps used by steps_example.py and docs/steps.md."""

from __future__ import annotations

from typing import Any

from aiobgproc import Interrupt, report_progress


def fetch(data: dict[str, Any], url: str) -> dict[str, Any]:
    report_progress(0.5, "downloading")
    print(f"pretending to fetch {url}")  # goes to the output log
    return {**data, "body": f"<html>{url}</html>"}


def review(data: dict[str, Any]) -> Any:
    if len(data["body"]) > 10:
        return Interrupt({"summary": data["body"][:20]})  # pause for a human
    return {"summary": data["body"], "approved": True}


class Publish:
    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        print(f"publishing to {self.channel}")
        return {"published": data["approved"], "channel": self.channel}
