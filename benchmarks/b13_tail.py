"""B13 tail: the last lines of a big log. A command writes ``b13_bytes`` of 100-byte lines to
stdout (a line on stderr after every 20 MB); then ``output(tail=1000)`` (both streams) and
``output(stream="stderr", tail=10)`` are timed, 20 calls each: median ms, and the peak of
Python's allocations during one call (tracemalloc), which must not grow with the log.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from typing import Any, Final

from aiobgproc import Command, Manager, Status
from benchmarks.harness import MIB, BenchError, Benchmark, Context, ms, run_loop

_WRITER: Final = """
import sys
total = int(sys.argv[1])
block = b''.join(b'%05d ' % k + b'.' * 93 + b'\\n' for k in range(10_000))  # 1,000,000 bytes
for i in range(total // len(block)):
    sys.stdout.buffer.write(block)
    if i % 20 == 19:
        sys.stderr.buffer.write(b'err %d\\n' % i)
        sys.stderr.buffer.flush()
"""
_CALLS: Final = 20


async def _timed(manager: Manager, process_id: str, **arguments: Any) -> tuple[float, int]:
    """The median of the calls' times, and the allocation peak of one more call."""
    times = []
    for _ in range(_CALLS):
        began = time.perf_counter()
        await manager.output(process_id, **arguments)
        times.append(time.perf_counter() - began)
    tracemalloc.start()
    try:
        await manager.output(process_id, **arguments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return statistics.median(times), peak


async def _measure(context: Context) -> dict[str, Any]:
    nbytes = context.sizes.b13_bytes
    async with Manager(context.stores.fresh(), max_output_bytes=None) as manager:
        argv = [sys.executable, "-c", _WRITER, str(nbytes)]
        info = await manager.wait_for(await manager.start(Command(argv)), timeout=600)
        if info.status is not Status.FINISHED:
            raise BenchError(f"b13: the writer ended {info.status}")
        both, both_peak = await _timed(manager, info.id, tail=1000)
        stderr, stderr_peak = await _timed(manager, info.id, stream="stderr", tail=10)
    return {
        "b13_tail_ms": ms(both),
        "b13_stderr_tail_ms": ms(stderr),
        "b13_tail_peak_mb": round(max(both_peak, stderr_peak) / MIB, 1),
        "b13_log_mb": round(info.output_size / MIB),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b13",
    run,
    keys=("b13_tail_ms", "b13_stderr_tail_ms", "b13_tail_peak_mb", "b13_log_mb"),
    targets={"b13_tail_ms": ("<", 100.0, ""), "b13_stderr_tail_ms": ("<", 100.0, "")},
)
