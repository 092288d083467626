"""``aiobgproc logs``: a process's output, both streams or one, its last lines, followed live,
as raw bytes or one JSON object a chunk."""

from __future__ import annotations

import argparse
import json
import sys

from ._cli_format import CliError
from ._output_reading import STREAM_NAMES, STREAMS, OutputReading, output_chunks


def add_logs_options(logs: argparse.ArgumentParser) -> None:
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow live output")
    logs.add_argument("--stream", choices=list(STREAMS), help="only this stream (default: both)")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines (then follow)")
    logs.add_argument(
        "--json",
        action="store_true",
        help='one JSON object a chunk and a line: "seq", "stream", "data" (UTF-8, invalid '
        "bytes replaced)",
    )


async def show_logs(manager: OutputReading, args: argparse.Namespace) -> None:
    """Write the output to stdout as it is read (as bytes: output need not be text)."""
    if args.tail is not None and args.tail < 1:
        raise CliError(f"--tail takes a number of lines >= 1, not {args.tail}")
    sink = sys.stdout.buffer
    chunks = output_chunks(manager, args.id, stream=args.stream, tail=args.tail, follow=args.follow)
    async for seq, stream, data in chunks:
        if args.json:
            text = data.decode("utf-8", "replace")
            item = {"seq": seq, "stream": STREAM_NAMES.get(stream, "stdout"), "data": text}
            sink.write(json.dumps(item).encode() + b"\n")
        else:
            sink.write(data)
        if args.follow:
            sink.flush()
    sink.flush()
