"""B4 output: ``head -c N /dev/zero`` through a Manager with ``max_output_bytes=None``, MB/s
into the store vs a raw asyncio pipe read, and the peak RSS growth of the manager's process
(run in a fresh subprocess: ``python -m benchmarks.b4_output``, so the RSS is its own).

On SQLite it also reports the ceiling any design that keeps output in SQLite pays: plain
sqlite3 storing the same bytes as 1 MiB BLOBs with the store's settings
(``b4_sqlite_ceiling_mb_s``); on PostgreSQL, what the output takes on disk
(``b4_pg_stored_mb``: TOAST compresses the zeros).

The event loop's lag while the output flows (``b4_loop_lag_p99_ms``): a ticker task in the
manager's own loop sleeps 5 ms at a time and records how late it wakes; p99 of that. A web
app that embeds the manager answers no later than that.

Targets (issue 19): at least 0.9 of the SQLite ceiling, RSS growth under 50 MB, loop lag p99
under 10 ms. The raw pipe read is a figure (``b4_ratio``), not a target: a pipe is no store.

Zeros compress to nothing, and a new store compresses output (zstd, store/codec.py): so B4
also runs ``cat`` of realistic log text (benchmarks/logtext.py: 8 MiB of varied lines,
repeated up to 64 MiB; chunks are compressed one by one, so the repeats gain nothing):
``b4_text_mb_s``, its loop lag, the space it takes (``b4_text_space_ratio``: bytes written /
bytes stored, SQLite), and on SQLite plain sqlite3 storing the same text as 1 MiB BLOBs raw
(``b4_text_raw_ceiling_mb_s``: the ceiling of storing it uncompressed, and
``b4_text_ratio_vs_raw_ceiling``), compressed with zstd level 1 and with zlib level 1 (each
compression timed with its write: ``b4_text_zstd_ceiling_mb_s``, ``b4_text_zlib_ceiling_mb_s``
and their space ratios), the figures the choice of zstd rests on (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psutil

from aiobgproc import Command, Manager
from benchmarks.harness import (
    LOOPS,
    MIB,
    BenchError,
    Benchmark,
    Context,
    blocking,
    check_ended,
    child_env,
    interrupt_on_sigterm,
    loop_name,
    percentile,
    ratio,
    run_loop,
    set_loop,
)
from benchmarks.logtext import log_text
from benchmarks.stores import PostgresStores, is_postgres, sqlite_path

TEXT_MAX: Final = 64 * MIB
TEXT_BLOCK: Final = 8 * MIB


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds, in a thread, and keeps the peak."""

    def __init__(self, interval: float = 0.01) -> None:
        self._interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


async def _raw_pipe(nbytes: int) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "head",
        "-c",
        str(nbytes),
        "/dev/zero",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    received = 0
    while chunk := await proc.stdout.read(1 << 20):
        received += len(chunk)
    await proc.wait()
    elapsed = time.perf_counter() - started
    if received != nbytes:
        raise BenchError(f"raw pipe: read {received} bytes, expected {nbytes}")
    return elapsed


def _sqlite_ceiling(
    nbytes: int,
    directory: Path,
    data: bytes | None = None,
    compress: Callable[[bytes], bytes] | None = None,
) -> tuple[float, int]:
    """Seconds plain sqlite3 takes to store ``nbytes`` (zeros, or ``data``) as 1 MiB BLOB
    rows, one transaction each, in a new file with the store's settings (4 KiB pages, WAL,
    synchronous=NORMAL, a checkpoint every 16 MiB): what any design that keeps output in
    SQLite pays at least; with ``compress``, each chunk compressed first (timed too). And
    the bytes stored."""
    path = directory / f"ceiling-{secrets.token_hex(4)}.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA page_size = 4096")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 4096")
        db.execute("CREATE TABLE chunks (process_id TEXT, seq INTEGER, data BLOB)")
        source = bytes(MIB) if data is None else data
        stored = 0
        started = time.perf_counter()
        for seq in range(max(nbytes // MIB, 1)):
            blob = source[(seq * MIB) % len(source) :][:MIB]
            if compress is not None:
                blob = compress(blob)
            stored += len(blob)
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO chunks VALUES ('p', ?, ?)", (seq, blob))
            db.execute("COMMIT")
        return time.perf_counter() - started, stored
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


async def _ticker(lags: list[float], stop: asyncio.Event, interval: float = 0.005) -> None:
    """How late the loop wakes a task that sleeps ``interval`` at a time (seconds)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(interval)
        lags.append(max(0.0, loop.time() - asked - interval))


async def _child(nbytes: int, store: str) -> dict[str, Any]:
    """The subprocess's figures: the manager's first (on a clean heap), then the raw pipe
    read of the same command."""
    async with Manager(store, concurrency=1, max_output_bytes=None) as manager:
        warm_up = await manager.start(Command(["head", "-c", str(MIB), "/dev/zero"]))
        await check_ended(manager, warm_up)
        command = Command(["head", "-c", str(nbytes), "/dev/zero"])
        lags: list[float] = []
        stop = asyncio.Event()
        with RssSampler() as sampler:
            before = sampler.peak
            ticker = asyncio.ensure_future(_ticker(lags, stop))
            started = time.perf_counter()
            process_id = await manager.start(command)
            info = await manager.wait_for(process_id, timeout=900)
            elapsed = time.perf_counter() - started
            stop.set()
            await ticker
        if info.status != "finished" or info.output_size != nbytes:
            raise BenchError(f"b4: {info.status}, {info.output_size} of {nbytes} bytes")
        stored = len(await manager.output(process_id)) if nbytes <= 64 * MIB else None
        if stored is not None and stored != nbytes:
            raise BenchError(f"b4: {stored} bytes in the store, expected {nbytes}")
        text_figures = await _text(manager, store, min(nbytes, TEXT_MAX))
    await _raw_pipe(MIB)
    raw = await _raw_pipe(nbytes)
    figures = {
        "ours_mb_s": nbytes / MIB / elapsed,
        "raw_mb_s": nbytes / MIB / raw,
        "rss_growth_mb": (sampler.peak - before) / MIB,
        "loop_lag_p99_ms": percentile(lags, 99) * 1000 if lags else 0.0,
        **text_figures,
    }
    if not is_postgres(store):
        directory = sqlite_path(store).parent
        figures["sqlite_mb_s"] = nbytes / MIB / _sqlite_ceiling(nbytes, directory)[0]
        figures.update(_text_ceilings(min(nbytes, TEXT_MAX), directory))
    return figures


def _text_file(nbytes: int, directory: Path) -> tuple[Path, bytes]:
    block = log_text(min(nbytes, TEXT_BLOCK))
    path = directory / "b4-log.txt"
    with path.open("wb") as handle:
        for offset in range(0, nbytes, len(block)):
            handle.write(block[: nbytes - offset])
    return path, block


async def _text(manager: Manager, store: str, nbytes: int) -> dict[str, float]:
    """``cat`` of ``nbytes`` of log text through the manager: MB/s, loop lag, space."""
    directory = Path(sqlite_path(store)).parent if not is_postgres(store) else Path.cwd()
    path, _ = _text_file(nbytes, directory)
    try:
        lags: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.ensure_future(_ticker(lags, stop))
        started = time.perf_counter()
        process_id = await manager.start(Command(["cat", str(path)]))
        info = await manager.wait_for(process_id, timeout=900)
        elapsed = time.perf_counter() - started
        stop.set()
        await ticker
    finally:
        path.unlink(missing_ok=True)
    if info.status != "finished" or info.output_size != nbytes:
        raise BenchError(f"b4 text: {info.status}, {info.output_size} of {nbytes} bytes")
    figures = {
        "text_mb_s": nbytes / MIB / elapsed,
        "text_loop_lag_p99_ms": percentile(lags, 99) * 1000 if lags else 0.0,
    }
    if not is_postgres(store):
        with sqlite3.connect(sqlite_path(store)) as db:
            (stored,) = db.execute(
                "SELECT sum(length(data)) FROM output_chunks WHERE process_id = ?", (process_id,)
            ).fetchone()
        figures["text_space_ratio"] = nbytes / stored
    return figures


def _text_ceilings(nbytes: int, directory: Path) -> dict[str, float]:
    """Plain sqlite3 storing the same log text raw, zstd-1 and zlib-1 compressed."""
    import zstandard  # aiobgproc's own dependency (its output codec)

    block = log_text(min(nbytes, TEXT_BLOCK))
    zstd = zstandard.ZstdCompressor(level=1).compress
    figures: dict[str, float] = {}
    for name, compress in (("raw", None), ("zstd", zstd), ("zlib", lambda b: zlib.compress(b, 1))):
        seconds, stored = _sqlite_ceiling(nbytes, directory, block, compress)
        figures[f"text_{name}_ceiling_mb_s"] = nbytes / MIB / seconds
        figures[f"text_{name}_space_ratio"] = nbytes / stored
    return figures


def run(context: Context) -> dict[str, Any]:
    sizes, stores = context.sizes, context.stores
    argv = [sys.executable, "-m", "benchmarks.b4_output", "--bytes", str(sizes.b4_bytes)]
    argv += ["--loop", loop_name(), "--store", stores.fresh()]
    proc = context.children.start(argv, stdout=subprocess.PIPE, env=child_env())
    try:
        out, _ = proc.communicate(timeout=1800)
    finally:
        context.children.stop(proc)
    if proc.returncode != 0:
        raise BenchError(f"the B4 subprocess exited with code {proc.returncode}")
    figures = json.loads(out)
    result = {
        "b4_ratio": ratio(figures["ours_mb_s"], figures["raw_mb_s"]),
        "b4_ours_mb_s": round(figures["ours_mb_s"], 1),
        "b4_raw_mb_s": round(figures["raw_mb_s"], 1),
        "b4_rss_growth_mb": round(figures["rss_growth_mb"], 1),
        "b4_loop_lag_p99_ms": round(figures["loop_lag_p99_ms"], 2),
        "b4_mb": sizes.b4_bytes // MIB,
    }
    result["b4_text_mb_s"] = round(figures["text_mb_s"], 1)
    result["b4_text_loop_lag_p99_ms"] = round(figures["text_loop_lag_p99_ms"], 2)
    if "sqlite_mb_s" in figures:
        result["b4_sqlite_ceiling_mb_s"] = round(figures["sqlite_mb_s"], 1)
        result["b4_ratio_vs_sqlite_ceiling"] = ratio(figures["ours_mb_s"], figures["sqlite_mb_s"])
        result["b4_text_space_ratio"] = round(figures["text_space_ratio"], 2)
        for name in ("raw", "zstd", "zlib"):
            result[f"b4_text_{name}_ceiling_mb_s"] = round(figures[f"text_{name}_ceiling_mb_s"], 1)
            if name != "raw":
                result[f"b4_text_{name}_space_ratio"] = round(
                    figures[f"text_{name}_space_ratio"], 2
                )
        result["b4_text_ratio_vs_raw_ceiling"] = ratio(
            figures["text_mb_s"], figures["text_raw_ceiling_mb_s"]
        )
        result["b4_text_ratio_vs_zstd_ceiling"] = ratio(
            figures["text_mb_s"], figures["text_zstd_ceiling_mb_s"]
        )
    if isinstance(stores, PostgresStores):
        # What the output takes on disk: PostgreSQL compresses the zeros (TOAST), SQLite
        # stores every byte.
        result["b4_pg_stored_mb"] = round(blocking(stores.output_bytes) / MIB, 1)
    return result


BENCHMARK: Final = Benchmark(
    "b4",
    run,
    keys=(
        "b4_ratio",
        "b4_ours_mb_s",
        "b4_raw_mb_s",
        "b4_rss_growth_mb",
        "b4_loop_lag_p99_ms",
        "b4_text_mb_s",
        "b4_text_loop_lag_p99_ms",
    ),
    targets={
        "b4_ratio_vs_sqlite_ceiling": (">=", 0.9, "(SQLite)"),
        "b4_rss_growth_mb": ("<", 50.0, ""),
        "b4_loop_lag_p99_ms": ("<", 10.0, ""),
    },
)


def main() -> None:
    """The subprocess run by ``run``: one JSON object of raw figures on stdout."""
    parser = argparse.ArgumentParser(description="B4's measuring subprocess")
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    options = parser.parse_args()
    set_loop(options.loop)
    interrupt_on_sigterm()
    print(json.dumps(run_loop(_child(options.bytes, options.store))), flush=True)


if __name__ == "__main__":
    main()
