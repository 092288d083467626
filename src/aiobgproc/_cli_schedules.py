"""The command line's retries (``run --retries``), ``aiobgproc restart`` and
``aiobgproc schedule add|list|rm``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ._cli_format import CliError, Out, json_object, parse_data, parse_duration, print_table
from .models import Retry


def add_retry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retries", type=int, metavar="N", help="run again up to N times after a failed run"
    )
    parser.add_argument(
        "--retry-delay", type=float, default=1.0, metavar="S", help="seconds before the first retry"
    )
    parser.add_argument(
        "--retry-backoff",
        type=float,
        default=2.0,
        metavar="F",
        help="each further wait is F times the one before",
    )


def retry_option(args: argparse.Namespace) -> Retry | None:
    """``--retries N``: Retry(attempts=N + 1), N retries after the first run."""
    if args.retries is None:
        return None
    if args.retries < 0:
        raise CliError(f"--retries takes a whole number >= 0, not {args.retries}")
    return Retry(args.retries + 1, delay=args.retry_delay, backoff=args.retry_backoff)


def add_restart_command(restart: argparse.ArgumentParser) -> None:
    restart.add_argument("id")
    restart.add_argument("--from-step", metavar="NAME", help="reuse the steps before this one")
    restart.add_argument("--data", help="a JSON object: replaces the original data")


async def run_restart(manager: Any, args: argparse.Namespace) -> str:
    process_id: str = await manager.restart(
        args.id, data=parse_data(args.data), from_step=args.from_step
    )
    return process_id


def add_schedule_command(
    schedule: argparse.ArgumentParser, store_option: Callable[[argparse.ArgumentParser], None]
) -> None:
    actions = schedule.add_subparsers(
        dest="schedule_action", required=True, parser_class=type(schedule)
    )
    add = actions.add_parser("add", help="create or replace a schedule")
    add.add_argument("name")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="five-field crontab, UTC, e.g. '*/5 * * * *'")
    when.add_argument("--every", help="seconds between runs (or 30s, 5m, 1h...)")
    add.add_argument("--spec", help="a step process's JSON file (as `start` takes)")
    add.add_argument("--data", help="the process's data, a JSON object")
    add.add_argument("--timeout", type=float)
    add.add_argument("--label", help="of each process (default: the schedule's name)")
    add.add_argument("--meta", help="a JSON object (each process's meta also gets the name)")
    add.add_argument("--key", help="an idempotency key for each process it starts")
    add.add_argument("--queue", help="queue name (default: default)")
    add.add_argument("--priority", type=int, help="-1000..1000, higher runs first")
    # The command, after "--", is set aside by cli.main before parsing.
    add.usage = "aiobgproc schedule add NAME (--cron EXPR | --every S) [options] -- CMD ..."
    listing = actions.add_parser("list", help="the store's schedules")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("rm", help="delete a schedule")
    remove.add_argument("name")
    for action in (add, listing, remove):
        store_option(action)


def schedule_options(args: argparse.Namespace) -> dict[str, Any]:
    """schedule()'s keywords from ``schedule add``'s flags (the work aside)."""
    options: dict[str, Any] = {"data": parse_data(args.data)}
    if args.cron is not None:
        options["cron"] = args.cron
    else:
        options["every"] = parse_duration(args.every).total_seconds()
    if args.timeout is not None:
        options["timeout"] = args.timeout
    for name in ("label", "key", "queue", "priority"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if args.meta is not None:
        options["meta"] = json_object(args.meta, "--meta")
    return options


def show_schedules(infos: list[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps([info.to_dict() for info in infos]))
        return
    out = Out()
    header = ("NAME", "WHEN", "NEXT", "LAST", "LAST PROCESS")
    rows = [
        (
            info.name,
            info.cron if info.cron is not None else f"every {info.every:g} s",
            info.next_run_at.isoformat(timespec="seconds"),
            "-" if info.last_run_at is None else info.last_run_at.isoformat(timespec="seconds"),
            info.last_process_id or "-",
        )
        for info in infos
    ]
    print_table(out, header, rows)
