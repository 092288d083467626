"""HTML pieces of the dashboard's pages: every value a process brings (label, meta, argv,
output, errors) goes through ``e`` (escaped, attributes quoted)."""

from __future__ import annotations

import html
import json
import shlex
from datetime import UTC, datetime
from typing import Any, Final

from ..models import ProcessInfo, Status

STATUS_ORDER: Final = [status.value for status in Status]


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def what(info: ProcessInfo) -> str:
    """What the process is: its command line, or its step names."""
    if info.command is not None:
        return shlex.join(info.command)
    return " → ".join(info.steps)


def badge(status: Status | str) -> str:
    value = Status(status).value
    return f'<span class="status status-{e(value)}">{e(value)}</span>'


def process_row(info: ProcessInfo, root: str) -> str:
    steps = f"{info.steps_done}/{info.steps_total}" if info.kind == "process" else ""
    created = info.created_at.isoformat()
    return (
        "<tr>"
        f'<td class="id"><a href="{e(root)}/processes/{e(info.id)}">{e(info.id[:12])}</a></td>'
        f'<td class="what">{e(what(info))}</td>'
        f"<td>{badge(info.status)}</td>"
        f"<td>{e(info.queue)}</td>"
        f"<td>{e(info.label)}</td>"
        f'<td><time datetime="{e(created)}">{e(age(info.created_at))}</time></td>'
        f"<td>{e(steps)}</td>"
        "</tr>"
    )


def field_rows(pairs: list[tuple[str, str]]) -> str:
    """A definition list; the values are HTML already (escaped by the caller)."""
    return "".join(f"<dt>{e(name)}</dt><dd>{value}</dd>" for name, value in pairs if value)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def document(title: str, body: str, *, root: str, csrf: str, page: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · aiobgproc</title>"
        f'<link rel="stylesheet" href="{e(root)}/static/app.css">'
        f'<script src="{e(root)}/static/app.js" defer></script>'
        f'</head><body data-root="{e(root)}" data-csrf="{e(csrf)}" data-page="{e(page)}">'
        '<header><nav><a class="brand" href="' + e(root or "/") + '">aiobgproc</a>'
        f'<a href="{e(root)}/">Processes</a><a href="{e(root)}/queues">Queues &amp; schedules</a>'
        f"</nav></header><main>{body}</main></body></html>"
    )


def form_button(action: str, label: str, csrf: str, *, kind: str = "") -> str:
    return (
        f'<form method="post" action="{e(action)}" class="inline">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<button type="submit" class="{e(kind)}">{e(label)}</button></form>'
    )
