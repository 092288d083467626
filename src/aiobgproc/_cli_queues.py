"""The command line's options for describing, queueing and scheduling a process (``run``,
``start``), its ``list`` filters, and ``aiobgproc queue``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ._cli_format import CliError, Out, json_object, parse_duration, print_table

_AT_HELP = "ISO 8601 time with an offset or Z, e.g. 2026-12-24T18:00:00Z"


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--at {text!r} is not an ISO 8601 time ({_AT_HELP})") from None
    if when.tzinfo is None:
        raise CliError(f"--at {text!r} has no UTC offset: add Z or +HH:MM")
    return when


def add_placement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", help="a short name shown by info and list")
    parser.add_argument("--meta", help="a JSON object kept with the process (list --meta finds it)")
    parser.add_argument(
        "--key", help="idempotency key: while a process with it is active, print its id"
    )
    parser.add_argument("--queue", default="default", help="queue name (default: default)")
    parser.add_argument("--priority", type=int, default=0, help="-1000..1000, higher runs first")
    parser.add_argument("--delay", help="do not run before this many seconds (or 5m, 2h...)")
    parser.add_argument("--at", help=f"do not run before this time: {_AT_HELP}")
    parser.add_argument(
        "--after", action="append", default=[], metavar="ID", help="run after this process finished"
    )


def placement_options(args: argparse.Namespace) -> dict[str, Any]:
    """start()'s keyword options from the flags add_placement_options added."""
    return {
        "label": args.label,
        "meta": json_object(args.meta, "--meta"),
        "key": args.key,
        "queue": args.queue,
        "priority": args.priority,
        "delay": None if args.delay is None else parse_duration(args.delay),
        "at": _parse_at(args.at),
        "after": args.after,
    }


def add_list_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", help="only this queue")
    parser.add_argument("--label", help="only processes with this label")
    parser.add_argument("--key", help="only processes started with this key")
    parser.add_argument("--meta", help="a JSON object: only processes whose meta has its values")
    parser.add_argument("--before", metavar="ID", help="only processes created before this one")


def list_filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "queue": args.queue,
        "label": args.label,
        "key": args.key,
        "meta": json_object(args.meta, "--meta"),
        "before": args.before,
    }


def add_queue_command(
    queue: argparse.ArgumentParser, store_option: Callable[[argparse.ArgumentParser], None]
) -> None:
    actions = queue.add_subparsers(dest="queue_action", required=True, parser_class=type(queue))
    listing = actions.add_parser("list", help="queues with a setting or work")
    listing.add_argument("--json", action="store_true")
    limit = actions.add_parser("limit", help="run at most N of a queue's processes at once")
    limit.add_argument("name")
    limit.add_argument("limit", help="a whole number >= 1, or none")
    pause = actions.add_parser("pause", help="claim none of a queue's processes")
    resume = actions.add_parser("resume", help="claim a paused queue's processes again")
    for action in (pause, resume):
        action.add_argument("name")
    for action in (listing, limit, pause, resume):
        store_option(action)  # --store after the action too


async def run_queue_command(manager: Any, args: argparse.Namespace) -> None:
    """``aiobgproc queue ...`` on an open manager (a client)."""
    action = args.queue_action
    if action == "limit":
        text = args.limit.strip().lower()
        if text == "none":
            limit = None
        else:
            try:
                limit = int(text)
            except ValueError:
                raise CliError(
                    f"a queue limit is a whole number or none, not {args.limit!r}"
                ) from None
        await manager.set_queue_limit(args.name, limit)
    elif action == "pause":
        await manager.pause_queue(args.name)
    elif action == "resume":
        await manager.resume_queue(args.name)
    else:
        queues = await manager.queues()
        if args.json:
            print(json.dumps([queue.to_dict() for queue in queues]))
            return
        out = Out()
        header = ("NAME", "LIMIT", "PAUSED", "QUEUED", "RUNNING")
        rows = [
            (
                queue.name,
                "-" if queue.limit is None else str(queue.limit),
                "yes" if queue.paused else "no",
                str(queue.queued),
                str(queue.running),
            )
            for queue in queues
        ]
        print_table(out, header, rows)
