"""What the command line reads and prints: durations, JSON data, process tables and details,
errors on one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TextIO

from .models import Process, ProcessInfo, Status, Step

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CliError(Exception):
    """A problem to report on one line of stderr."""


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if match is None:
        raise CliError(f"not a duration: {text!r} (use e.g. 30s, 15m, 12h, 7d)")
    try:
        return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    except OverflowError:
        raise CliError(f"duration {text!r} is too long") from None


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """An option's JSON object (``--data``, ``--meta``), or None when it was not given."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"{option} must be a JSON object")
    return value


def parse_data(text: str | None) -> dict[str, Any] | None:
    return json_object(text, "--data")


def print_table(out: Out, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the header only on a terminal."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows] if out.tty else rows:
        out.line("  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row)).rstrip())


def load_spec(path: str) -> Process:
    """A Process from a JSON file: {"steps": {name: {"target": ..., "args": [...],
    "kwargs": {...}, "interrupt": false}} (or a list of such), "timeout", "cwd", "env"}."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or "steps" not in raw:
        raise CliError(f'{path} must be a JSON object with "steps"')

    def step(spec: Any) -> Step:
        if isinstance(spec, str):
            return Step(spec)
        if not isinstance(spec, dict) or "target" not in spec:
            raise CliError(f'each step in {path} needs a "target"')
        args = spec.get("args", [])
        kwargs = spec.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise CliError(f'"args" must be a list and "kwargs" an object in {path}')
        return Step(spec["target"], *args, interrupt=bool(spec.get("interrupt", False)), **kwargs)

    steps = raw["steps"]
    built: dict[str, Step] | list[Step]
    if isinstance(steps, dict):
        built = {str(name): step(spec) for name, spec in steps.items()}
    elif isinstance(steps, list):
        built = [step(spec) for spec in steps]
    else:
        raise CliError(f'"steps" in {path} must be an object or a list')
    return Process(built, timeout=raw.get("timeout"), cwd=raw.get("cwd"), env=raw.get("env"))


# -- presentation -----------------------------------------------------------------------------


class Out:
    """Pleasant on a terminal, plain when piped."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() and os.environ.get("NO_COLOR") is None

    def paint(self, text: str, status: Status | str | None = None) -> str:
        if not self.tty or status is None:
            return text
        color = {
            "finished": "32",
            "error": "31",
            "timeout": "31",
            "cancelled": "33",
            "interrupted": "36",
            "running": "34",
        }.get(str(status))
        return f"\x1b[{color}m{text}\x1b[0m" if color else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)


def _when(info: ProcessInfo, name: str) -> str:
    value = getattr(info, name)
    return value.isoformat(timespec="seconds") if value is not None else "-"


def progress_text(info: ProcessInfo) -> str:
    if info.progress is None:
        return ""
    message = f" {info.progress_message}" if info.progress_message else ""
    return f"{info.progress:.0%}{message}"


def show_info(out: Out, info: ProcessInfo) -> None:
    rows = [
        ("id", info.id),
        ("kind", info.kind),
        ("what", one_line(describe(info))),
        ("status", out.paint(str(info.status), info.status)),
        ("created", _when(info, "created_at")),
        ("started", _when(info, "started_at")),
        ("finished", _when(info, "finished_at")),
    ]
    if info.label is not None:
        rows.append(("label", one_line(info.label)))
    rows.append(("queue", f"{info.queue} (priority {info.priority})"))
    if info.key is not None:
        rows.append(("key", one_line(info.key)))
    if info.meta is not None:
        rows.append(("meta", one_line(json.dumps(info.meta))))
    if info.run_at is not None:
        rows.append(("run at", _when(info, "run_at")))
    if info.after:
        rows.append(("after", " ".join(info.after)))
    if info.kind == "process":
        rows.append(("step", f"{info.step or '-'} ({info.steps_done}/{info.steps_total} done)"))
    if info.progress is not None:
        rows.append(("progress", progress_text(info)))
    if info.exit_code is not None:
        rows.append(("exit code", str(info.exit_code)))
    if info.os_pid is not None:
        rows.append(("os pid", str(info.os_pid)))
    rows.append(("attempts", str(info.attempts)))
    if info.output is not None:
        rows.append(("output", json.dumps(info.output)))
    if info.error is not None:
        where = f" in step {info.error.step!r}" if info.error.step else ""
        rows.append(("error", one_line(f"{info.error.type}{where}: {info.error.message}")))
    rows.append(
        (
            "output log",
            f"{info.output_size} bytes" + (" (truncated)" if info.output_truncated else ""),
        )
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.line(f"{name:<{width}}  {value}")


_WHAT_WIDTH = 60


def describe(info: ProcessInfo) -> str:
    """What a process is: a command's line, or its steps' names."""
    if info.command is not None:
        return shlex.join(info.command)
    return " > ".join(info.steps)


def show_table(out: Out, infos: Sequence[ProcessInfo]) -> None:
    header = ("ID", "KIND", "STATUS", "CREATED", "STEP", "PROGRESS", "QUEUE", "LABEL", "WHAT")
    rows = []
    for info in infos:
        what = one_line(describe(info))
        if len(what) > _WHAT_WIDTH:
            what = what[: _WHAT_WIDTH - 3] + "..."
        rows.append(
            (
                info.id,
                info.kind,
                str(info.status),
                _when(info, "created_at"),
                one_line(info.step or ""),
                progress_text(info),
                info.queue,
                one_line(info.label or ""),
                what,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    if out.tty:
        out.line("  ".join(f"{title:<{widths[i]}}" for i, title in enumerate(header)).rstrip())
    for row, info in zip(rows, infos, strict=True):
        cells = [f"{cell:<{widths[i]}}" for i, cell in enumerate(row)]
        cells[2] = out.paint(cells[2], info.status)
        out.line("  ".join(cells).rstrip())


# -- commands ---------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """``text`` safe to print as one line on a terminal: control characters (line breaks,
    escape sequences a process id or a file could carry) shown escaped."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
