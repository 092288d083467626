"""The command line's calls that talk to a running command: ``input``, ``signal``,
``suspend``, ``resume``, and ``run --stdin``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ._cli_format import CliError
from ._process_controls import signal_number
from .manager import Manager
from .models import PIPE

ManagerFactory = Callable[[argparse.Namespace], Manager]
Add = Callable[[str, Any, str], argparse.ArgumentParser]


def add_stdin_option(run: argparse.ArgumentParser) -> None:
    given = run.add_mutually_exclusive_group()
    given.add_argument(
        "--stdin",
        metavar="FILE|-",
        help="give the command this file's bytes (- : this command's stdin) as its stdin",
    )
    given.add_argument(
        "--stdin-pipe",
        action="store_true",
        help="keep the command's stdin open for `aiobgproc input`",
    )


def stdin_option(args: argparse.Namespace) -> bytes | int | None:
    if args.stdin_pipe:
        return PIPE
    return None if args.stdin is None else _read_file(args.stdin)


def _read_file(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def add_control_commands(add: Add, manager: ManagerFactory) -> None:
    async def cmd_input(args: argparse.Namespace) -> int:
        async with manager(args) as opened:
            if args.close:
                await opened.close_input(args.id)
            else:
                data = args.data.encode() if args.data is not None else _read_file(args.file)
                await opened.send_input(args.id, data)
        return 0

    async def cmd_signal(args: argparse.Namespace) -> int:
        number = signal_number(args.signal)
        async with manager(args) as opened:
            await opened.signal(args.id, number, tree=args.tree)
        return 0

    async def cmd_suspend(args: argparse.Namespace) -> int:
        async with manager(args) as opened:
            await opened.suspend(args.id)
        return 0

    async def cmd_resume(args: argparse.Namespace) -> int:
        async with manager(args) as opened:
            await opened.resume(args.id)
        return 0

    given = add("input", cmd_input, "write to the stdin of a command run with --stdin-pipe")
    given.add_argument("id")
    what = given.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", metavar="TEXT", help="these bytes (UTF-8)")
    what.add_argument("--file", metavar="FILE", help="this file's bytes (- : stdin)")
    what.add_argument("--close", action="store_true", help="close its stdin (it reads EOF)")

    sig = add("signal", cmd_signal, "send a signal to a running process")
    sig.add_argument("id")
    sig.add_argument("signal", metavar="SIG", help="a name (SIGUSR1, USR1) or a number")
    sig.add_argument("--tree", action="store_true", help="to every process of its tree")

    for name, handler, text in (
        ("suspend", cmd_suspend, "stop a running process's whole tree (SIGSTOP)"),
        ("resume", cmd_resume, "continue a suspended process (SIGCONT)"),
    ):
        add(name, handler, text).add_argument("id")
