"""Realistic log text for the output benchmarks (B4): varied lines as an application writes
them (timestamps, levels, modules, access lines with addresses and timings, ids, numbers,
the odd traceback), not zeros. Deterministic (a fixed seed), and high in entropy for a log:
random addresses, uuids and figures on most lines (zstd-1 stores it in ~3.9x less space;
apt's and pytest's own logs compress ~8-10x)."""

from __future__ import annotations

import random
import time
import uuid

_LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]
_MODULES = [
    "app.api.orders",
    "app.db.pool",
    "uvicorn.access",
    "worker.tasks.resize",
    "app.auth",
    "app.billing.invoice",
    "sqlalchemy.engine",
]
_PATHS = ["/api/orders", "/api/users/%d", "/health", "/static/app.%s.js", "/api/invoices/%d/pdf"]
_WORDS = [
    "the",
    "of",
    "request",
    "processed",
    "user",
    "cache",
    "miss",
    "hit",
    "retry",
    "timeout",
    "connection",
    "pool",
    "acquired",
    "released",
    "payload",
    "validated",
    "queued",
    "sent",
    "received",
    "batch",
    "rows",
    "committed",
    "failed",
    "refreshed",
    "token",
    "expired",
]


def _line(rng: random.Random, at: float) -> str:
    level, module = rng.choice(_LEVELS), rng.choice(_MODULES)
    pick = rng.random()
    if pick < 0.3:
        path = rng.choice(_PATHS)
        if "%d" in path:
            path %= rng.randint(1, 99999)
        elif "%s" in path:
            path %= uuid.UUID(int=rng.getrandbits(128)).hex[:8]
        address = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        method = rng.choice(["GET", "POST", "PUT"])
        status = rng.choice([200, 200, 200, 201, 204, 304, 400, 404, 500])
        message = (
            f'{address} - "{method} {path} HTTP/1.1" {status} {rng.randint(0, 90000)}'
            f" {rng.random() * 300:.1f}ms"
        )
    elif pick < 0.5:
        words = " ".join(rng.choices(_WORDS, k=rng.randint(3, 9)))
        message = (
            f"{words} id={uuid.UUID(int=rng.getrandbits(128))} user={rng.randint(1, 10**6)}"
            f" took {rng.random() * 5:.3f}s"
        )
    elif pick < 0.52:
        message = (
            "Traceback (most recent call last):\n"
            f'  File "/srv/{module.replace(".", "/")}.py", line {rng.randint(1, 900)}, in handle\n'
            "    result = await self.call(payload)\n"
            f"ValueError: bad value {rng.random()!r}"
        )
    else:
        message = (
            " ".join(rng.choices(_WORDS, k=rng.randint(4, 14))) + f" n={rng.randint(0, 10**5)}"
        )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    return f"{stamp}.{rng.randint(0, 999):03d}Z {level:<7} [{module}] {message}\n"


def log_text(size: int, seed: int = 7) -> bytes:
    """``size`` bytes of log lines (the last one cut where the size ends)."""
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    at = 1_765_000_000.0
    while length < size:
        at += rng.random() * 0.05
        line = _line(rng, at)
        parts.append(line)
        length += len(line)
    return "".join(parts).encode()[:size]
