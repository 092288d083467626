"""Steps for the demo: count words in a text, wait for a human, then publish a summary."""

from __future__ import annotations

import time
from typing import Any

from aiobgproc import InterruptingStep, report_progress


def count_words(data: dict[str, Any]) -> dict[str, Any]:
    words = data["text"].split()
    for done in range(1, 5):
        time.sleep(0.15)
        report_progress(done / 4, f"counted {done * len(words) // 4} words")
    print(f"counted {len(words)} words")  # goes to the output log, not the result
    return {"text": data["text"], "words": len(words)}


class Review(InterruptingStep):
    """Pauses the process: a person looks at the count and proceeds with their verdict."""

    def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"words": data["words"], "question": "publish this count?"}


async def publish(data: dict[str, Any]) -> dict[str, Any]:
    print(f"publishing: {data['words']} words, approved={data['approved']}")
    return {"published": data["approved"], "words": data["words"]}
