"""The ``aiobgproc`` command line (also ``python -m aiobgproc``).

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import _clock, _location
from ._cli_burst import make_sure_it_runs
from ._cli_control import add_control_commands, add_stdin_option, stdin_option
from ._cli_format import (
    CliError,
    Out,
    load_spec,
    one_line,
    parse_data,
    parse_duration,
    progress_text,
    show_info,
    show_table,
)
from ._cli_logs import add_logs_options, show_logs
from ._cli_queues import (
    add_list_filters,
    add_placement_options,
    add_queue_command,
    list_filters,
    placement_options,
    run_queue_command,
)
from ._cli_schedules import (
    add_restart_command,
    add_retry_options,
    add_schedule_command,
    retry_option,
    run_restart,
    schedule_options,
    show_schedules,
)
from ._cli_web import add_web_command
from .errors import AiobgprocError, WaitTimeoutError
from .manager import Manager
from .models import Command, Process, ProcessInfo, Status

EXIT_OK = 0
EXIT_FAILED = 1  # the process ended as error (also: a CLI error, see EXIT_USAGE)
EXIT_USAGE = 2  # bad arguments, unknown id, unusable store
EXIT_TIMEOUT = 3  # the process ended as timeout
EXIT_CANCELLED = 4
EXIT_INTERRUPTED = 5  # paused, waiting for proceed
EXIT_WAIT_TIMEOUT = 124  # `wait --timeout` passed first (as timeout(1) does)

STATUS_EXIT = {
    Status.FINISHED: EXIT_OK,
    Status.ERROR: EXIT_FAILED,
    Status.TIMEOUT: EXIT_TIMEOUT,
    Status.CANCELLED: EXIT_CANCELLED,
    Status.INTERRUPTED: EXIT_INTERRUPTED,
}


def _manager(args: argparse.Namespace, *, run: bool = False, **options: Any) -> Manager:
    return Manager(args.store, run=run, **options)


async def _start_and_report(
    args: argparse.Namespace, work: Command | Process, data: dict[str, Any] | None
) -> int:
    out = Out()
    options = placement_options(args)
    async with _manager(args) as manager:
        process_id = await manager.start(work, data, timeout=args.timeout, **options)
        out.line(process_id)
        await make_sure_it_runs(manager, args.store, options["queue"])
        if not args.wait:
            return EXIT_OK
        info = await _wait(manager, process_id, None, out=Out(sys.stderr))
        return STATUS_EXIT.get(info.status, EXIT_FAILED)


async def cmd_run(args: argparse.Namespace) -> int:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CliError("nothing to run: give the command after --, e.g. aiobgproc run -- ls -l")
    env = {}
    for item in args.env or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--env takes NAME=VALUE, not {item!r}")
        env[name] = value
    command = Command(
        argv,
        cwd=args.cwd,
        env=env or None,
        shell=args.shell,
        retry=retry_option(args),
        stdin=stdin_option(args),
    )
    return await _start_and_report(args, command, None)


def _cwd_on_path() -> None:
    # Step targets are resolved with the caller's working directory on the path.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


async def cmd_start(args: argparse.Namespace) -> int:
    _cwd_on_path()
    return await _start_and_report(args, load_spec(args.spec), parse_data(args.data))


async def cmd_info(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        info = await manager.info(args.id)
    if args.json:
        print(json.dumps(info.to_dict()))
    else:
        show_info(Out(), info)
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        infos = await manager.list(status=args.status, limit=args.limit, **list_filters(args))
    if args.json:
        print(json.dumps([info.to_dict() for info in infos]))
    else:
        show_table(Out(), infos)
    return EXIT_OK


async def cmd_logs(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        await show_logs(manager, args)
    return EXIT_OK


async def _wait(
    manager: Manager, process_id: str, timeout: float | None, *, out: Out
) -> ProcessInfo:
    """Wait, showing the progress of a running step on a terminal."""
    if not out.tty:
        return await manager.wait_for(process_id, timeout)
    deadline = None if timeout is None else _clock.monotonic() + timeout
    shown = ""
    try:
        while True:
            remaining = None if deadline is None else max(deadline - _clock.monotonic(), 0.0)
            try:
                return await manager.wait_for(
                    process_id, 0.25 if remaining is None else min(0.25, remaining)
                )
            except WaitTimeoutError:
                if remaining is not None and remaining <= 0.25:
                    raise WaitTimeoutError(process_id, timeout or 0.0) from None
            info = await manager.info(process_id)
            text = f"{info.status} {info.step or ''} {progress_text(info)}".strip()
            if text != shown:
                out.stream.write("\r\x1b[K" + text)
                out.stream.flush()
                shown = text
    finally:
        if shown:
            out.stream.write("\r\x1b[K")
            out.stream.flush()


async def cmd_wait(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        try:
            info = await _wait(manager, args.id, args.timeout, out=Out(sys.stderr))
        except WaitTimeoutError as exc:
            print(f"aiobgproc: {exc}", file=sys.stderr)
            return EXIT_WAIT_TIMEOUT
    if args.json:
        print(json.dumps(info.to_dict()))
    else:
        out = Out()
        detail = f": {info.error.message}" if info.error is not None else ""
        out.line(out.paint(f"{info.status}{detail}", info.status))
    return STATUS_EXIT.get(info.status, EXIT_FAILED)


async def cmd_proceed(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        process_id = await manager.proceed(args.id, parse_data(args.data))
        await make_sure_it_runs(manager, args.store, (await manager.info(process_id)).queue)
    print(process_id)
    return EXIT_OK


async def cmd_cancel(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        info = await manager.cancel(args.id)
    print(info.status)
    return EXIT_OK


async def cmd_prune(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        count = await manager.prune(parse_duration(args.older_than or args.age or "7d"))
    print(count)
    return EXIT_OK


async def cmd_worker(args: argparse.Namespace) -> int:
    """Run queued processes until stopped (SIGTERM/SIGINT), the queue is empty (--burst), or
    --max-jobs processes were taken."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log = logging.getLogger("aiobgproc.worker")
    manager = _manager(
        args,
        run=True,
        concurrency=args.concurrency,
        max_jobs=args.max_jobs,
        queues=args.queue or None,
        reuse_executors=args.reuse_executors,
    )
    await manager.open()
    log.info("worker %s on %s", manager.id, _location.describe(args.store))
    try:
        stopped = asyncio.ensure_future(stop.wait())
        while True:
            idle = asyncio.ensure_future(manager.wait_idle(burst=args.burst))
            waits: set[asyncio.Future[Any]] = {stopped}
            if args.burst or args.max_jobs is not None:
                waits.add(idle)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await idle
            if stopped.done():
                break
            # Idle. Say so in the store first, then look at the queue once more: a `run`
            # that saw us as a live worker has queued its process by now, and one that looks
            # later sees no worker and starts its own. Nothing is left behind either way.
            await manager.stop_claiming()
            if manager.exhausted or await manager.queue_is_empty():
                break
            await manager.resume_claiming()
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
    finally:
        await manager.close(finish_timeout=args.grace if stop.is_set() else 0.0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return EXIT_OK


async def cmd_restart(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        process_id = await run_restart(manager, args)
        print(process_id, flush=True)
        await make_sure_it_runs(manager, args.store, (await manager.info(process_id)).queue)
    return EXIT_OK


async def cmd_schedule(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        if args.schedule_action == "list":
            show_schedules(await manager.schedules(), args.json)
        elif args.schedule_action == "rm":
            await manager.unschedule(args.name)
        else:
            argv = list(args.command)
            if (args.spec is None) == (not argv):
                raise CliError("give the work: a command after --, or --spec FILE.json")
            if not argv:
                # As `start`: step targets are resolved with the working directory on the path.
                _cwd_on_path()
            work = Command(argv) if argv else load_spec(args.spec)
            info = await manager.schedule(args.name, work, **schedule_options(args))
            print(info.next_run_at.isoformat())
    return EXIT_OK


async def cmd_events(args: argparse.Namespace) -> int:
    """Follow the event log until interrupted (SIGINT, SIGTERM, or a closed pipe)."""
    if args.since is not None and args.since < 0:
        raise CliError(f"--since takes an event's seq (>= 0), not {args.since}")
    out = Out()
    async with _manager(args) as manager:
        async for event in manager.events(since=args.since):
            if args.json:
                out.line(json.dumps(event.to_dict()))
            else:
                when = event.at.isoformat(timespec="milliseconds")
                step = f" {one_line(event.step)}" if event.step else ""
                out.line(f"{event.seq} {when} {event.process_id} {event.status}{step}")
    return EXIT_OK


async def cmd_queue(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        await run_queue_command(manager, args)
    return EXIT_OK


# -- parsing ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {one_line(message)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _store_option(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument(
        "--store",
        default=default,
        help="SQLite file, sqlite:/// or postgresql:// URL (default: $AIOBGPROC_STORE, else "
        "~/.local/share/aiobgproc/aiobgproc.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aiobgproc", description="Run and control background processes.")
    _store_option(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    sub = parser.add_subparsers(dest="command_name", required=True, parser_class=_Parser)

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        _store_option(command, argparse.SUPPRESS)
        command.set_defaults(handler=handler)
        return command

    run = add("run", cmd_run, "run a command in the background and print its id")
    run.add_argument(
        "--wait", action="store_true", help="wait for it; exit code tells how it ended"
    )
    run.add_argument("--timeout", type=float, help="seconds before it is stopped")
    run.add_argument("--cwd", help="working directory")
    run.add_argument("--env", action="append", metavar="NAME=VALUE", help="extra environment")
    run.add_argument("--shell", action="store_true", help="run the command with /bin/sh -c")
    add_placement_options(run)
    add_retry_options(run)
    add_stdin_option(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")

    start = add("start", cmd_start, "start a step process described in a JSON file")
    start.add_argument("spec", help='JSON file: {"steps": {"name": {"target": "pkg.mod:fn"}}}')
    start.add_argument("--data", help="input of the first step, as a JSON object")
    start.add_argument("--wait", action="store_true")
    start.add_argument("--timeout", type=float)
    add_placement_options(start)

    info = add("info", cmd_info, "show one process")
    info.add_argument("id")
    info.add_argument("--json", action="store_true")

    listing = add("list", cmd_list, "list processes, newest first")
    listing.add_argument("--status", choices=[str(status) for status in Status])
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    add_list_filters(listing)

    add_logs_options(add("logs", cmd_logs, "print a process's output"))

    wait = add("wait", cmd_wait, "wait until a process is interrupted or ends")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float)
    wait.add_argument("--json", action="store_true")

    proceed = add("proceed", cmd_proceed, "continue an interrupted process")
    proceed.add_argument("id")
    proceed.add_argument("--data", help="merged into the paused output, as a JSON object")

    cancel = add("cancel", cmd_cancel, "cancel a process")
    cancel.add_argument("id")

    prune = add("prune", cmd_prune, "delete processes that ended long ago (default: 7d)")
    prune.add_argument("age", nargs="?", help="e.g. 7d, 12h, 30m (same as --older-than)")
    prune.add_argument("--older-than", help="e.g. 7d, 12h, 30m")

    worker = add("worker", cmd_worker, "run queued processes")
    worker.add_argument("--concurrency", type=int, help="processes at once (default: CPUs)")
    worker.add_argument("--max-jobs", type=int, help="exit after taking this many processes")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--reuse-executors",
        type=int,
        default=1,
        metavar="N",
        help="run up to N step processes in one forked executor (default 1: a fresh one each)",
    )
    worker.add_argument(
        "--queue", action="append", metavar="NAME", help="run only this queue (repeatable)"
    )
    worker.add_argument(
        "--grace", type=float, default=10.0, help="on SIGTERM, seconds to let running work finish"
    )

    restart = add("restart", cmd_restart, "run an ended process's work again; print the new id")
    add_restart_command(restart)

    schedule = add("schedule", cmd_schedule, "add, list or remove schedules")
    add_schedule_command(schedule, lambda action: _store_option(action, argparse.SUPPRESS))

    events = add("events", cmd_events, "follow the store's event log (until interrupted)")
    events.add_argument("--since", type=int, metavar="SEQ", help="from after this event")
    events.add_argument("--json", action="store_true", help="one JSON object a line")

    add_control_commands(add, _manager)
    add_web_command(add)

    queue = add("queue", cmd_queue, "show queues, set a queue's limit, pause or resume it")
    add_queue_command(queue, lambda action: _store_option(action, argparse.SUPPRESS))
    return parser


def _subcommand(words: list[str]) -> list[str]:
    """The subcommand's words (``schedule add``...), options and their values left out."""
    found = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--store":
            skip = True
        elif not word.startswith("-"):
            found.append(word)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # `schedule add NAME --every S -- CMD ...`: argparse cannot take a command after a
    # positional and options, so what follows "--" is the command, set aside first.
    command: list[str] = []
    if "--" in words and _subcommand(words[: words.index("--")])[:2] == ["schedule", "add"]:
        split = words.index("--")
        words, command = words[:split], words[split + 1 :]
    args = parser.parse_args(words)
    if getattr(args, "schedule_action", None) == "add":
        args.command = command
    elif command:
        parser.error(f"unrecognized arguments: -- {' '.join(command)}")
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.store is not None:
        args.store = str(args.store)
    try:
        return int(asyncio.run(args.handler(args)))
    except (AiobgprocError, CliError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"aiobgproc: {one_line(message)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # never a traceback on a terminal: one line, and -v for details
        logging.getLogger("aiobgproc.cli").debug("unexpected error", exc_info=True)
        print(f"aiobgproc: unexpected {type(exc).__name__}: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
