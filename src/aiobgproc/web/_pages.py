"""The dashboard's pages: the process list, a process, queues and schedules, the login.

Server-rendered HTML (``_html``) that works without script; ``static/app.js`` makes it live
(new and changed processes, the output log) from the event log and the output stream.
Every change is a POST form carrying the CSRF token (``_security``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .._output_reading import STREAM_NAMES, output_chunks
from ..errors import AiobgprocError, InvalidSpecError, ProcessNotFoundError, StoreError
from ..manager import Manager
from ..models import LIVE_STATUSES, ProcessInfo, Status
from ._api import list_options
from ._html import (
    age,
    badge,
    document,
    e,
    field_rows,
    form_button,
    pretty_json,
    process_row,
    what,
)
from ._security import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, Policy, new_csrf_token

_FORM_BYTES = 1 << 20
LOG_LINES = 1000  # the last lines a process page shows (then it follows)


def root_of(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


class Pages:
    def __init__(self, holder: Any, policy: Policy) -> None:
        self.holder = holder
        self.policy = policy

    # -- plumbing ------------------------------------------------------------------------------

    def _token(self, request: Request) -> str:
        """This browser's CSRF token: its cookie's, or a new one (set by _render)."""
        token = getattr(request.state, "csrf", None)
        if token is None:
            token = request.state.csrf = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        return str(token)

    def _render(
        self, request: Request, title: str, body: str, page: str, status_code: int = 200
    ) -> HTMLResponse:
        token = self._token(request)
        root = root_of(request)
        text = document(title, body, root=root, csrf=token, page=page)
        response = HTMLResponse(text, status_code=status_code)
        response.headers["cache-control"] = "no-store"
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(
                CSRF_COOKIE, token, httponly=True, samesite="strict", path=root or "/"
            )
        return response

    def _login_redirect(self, request: Request) -> Response:
        root = root_of(request)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{root}/login?next={quote(target)}", status_code=303)

    def _back(self, request: Request, path: str, error: str | None = None) -> Response:
        suffix = f"?{urlencode({'error': error})}" if error else ""
        return RedirectResponse(f"{root_of(request)}{path}{suffix}", status_code=303)

    async def _csrf(self, request: Request) -> tuple[dict[str, str], str | None]:
        # Our forms are urlencoded, small: parsed here (Starlette's parser needs another
        # package, python-multipart, for what we never send).
        raw = await request.body()
        if len(raw) > _FORM_BYTES:
            return {}, "a form larger than 1 MiB"
        pairs = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        values = dict(pairs)
        token = values.get(CSRF_FIELD)
        return values, self.policy.cross_site(request, token)

    def _forbidden(self, request: Request, why: str) -> HTMLResponse:
        return self._render(request, "Refused", f'<p class="error">{e(why)}</p>', "error", 403)

    # -- the process list ----------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        if not self.policy.authenticated(request):
            return self._login_redirect(request)
        manager: Manager = await self.holder.get()
        root = root_of(request)
        params = request.query_params
        error = ""
        try:
            infos = await manager.list(**list_options(request))
        except (InvalidSpecError, ProcessNotFoundError) as exc:
            infos, error = [], str(exc)
        options = "".join(
            f'<option value="{e(s.value)}"{" selected" if params.get("status") == s else ""}>'
            f"{e(s.value)}</option>"
            for s in Status
        )
        filters = (
            f'<form method="get" action="{e(root)}/" class="filters">'
            f'<label>status <select name="status"><option value="">any</option>{options}'
            "</select></label>"
            f'<label>queue <input name="queue" value="{e(params.get("queue", ""))}"></label>'
            f'<label>label <input name="label" value="{e(params.get("label", ""))}"></label>'
            "<button>Filter</button></form>"
        )
        rows = "".join(process_row(info, root) for info in infos)
        more = ""
        if infos and len(infos) >= (list_options(request)["limit"]):
            query = {k: v for k, v in params.items() if k != "before"}
            query["before"] = infos[-1].id
            more = f'<p><a href="{e(root)}/?{e(urlencode(query))}">Older →</a></p>'
        body = (
            "<h1>Processes</h1>"
            + (f'<p class="error">{e(error)}</p>' if error else "")
            + filters
            + '<div class="table"><table id="processes"><thead><tr><th>id</th><th>what</th>'
            "<th>status</th><th>queue</th><th>label</th><th>age</th><th>steps</th></tr>"
            f'</thead><tbody data-live="{"" if params.get("before") else "1"}">{rows}</tbody>'
            "</table></div>" + ("" if infos else '<p class="empty">No process matches.</p>') + more
        )
        return self._render(request, "Processes", body, "list")

    # -- one process ----------------------------------------------------------------------------

    async def process(self, request: Request) -> Response:
        if not self.policy.authenticated(request):
            return self._login_redirect(request)
        manager: Manager = await self.holder.get()
        try:
            info = await manager.info(request.path_params["id"])
        except ProcessNotFoundError as exc:
            return self._render(
                request, "Not found", f'<p class="error">{e(exc)}</p>', "error", 404
            )
        return await self._process_page(request, manager, info, request.query_params.get("error"))

    async def _process_page(
        self,
        request: Request,
        manager: Manager,
        info: ProcessInfo,
        error: str | None,
        *,
        proceed_text: str | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        root = root_of(request)
        csrf = self._token(request)
        log = "".join(
            [
                f'<span class="{e(STREAM_NAMES.get(code, "stdout"))}">'
                f"{e(data.decode('utf-8', errors='replace'))}</span>"
                async for _, code, data in output_chunks(manager, info.id, tail=LOG_LINES)
            ]
        )
        fields = [
            ("what", f"<code>{e(what(info))}</code>"),
            ("kind", e(info.kind)),
            ("label", e(info.label)),
            ("queue", f"{e(info.queue)} (priority {e(info.priority)})"),
            ("key", e(info.key)),
            ("meta", f"<pre>{e(pretty_json(info.meta))}</pre>" if info.meta else ""),
            ("created", f"{e(info.created_at.isoformat())} ({e(age(info.created_at))})"),
            ("started", e(info.started_at.isoformat() if info.started_at else "")),
            ("finished", e(info.finished_at.isoformat() if info.finished_at else "")),
            ("run at", e(info.run_at.isoformat() if info.run_at else "")),
            ("attempts", e(info.attempts)),
            ("timeout", e(f"{info.timeout:g} s" if info.timeout is not None else "")),
            ("exit code", e(info.exit_code)),
            ("os pid", e(info.os_pid)),
            (
                "restarts",
                f'<a href="{e(root)}/processes/{e(info.restarted_from)}">'
                f"{e(info.restarted_from)}</a>"
                if info.restarted_from
                else "",
            ),
        ]
        sections = [
            f'<h1>Process <code>{e(info.id)}</code> <span id="status">{badge(info.status)}'
            "</span></h1>",
            f'<p class="error" id="flash">{e(error)}</p>' if error else "",
            '<p class="notice" id="changed" hidden></p>',
            f"<dl>{field_rows(fields)}</dl>",
            self._steps(info),
            self._error(info),
            self._actions(info, root, csrf, proceed_text),
            '<h2>Output <span class="legend"><span class="stdout">stdout</span>'
            ' <span class="stderr">stderr</span></span></h2>'
            f'<pre id="log" data-process="{e(info.id)}" data-tail="{LOG_LINES}">{log}</pre>',
        ]
        return self._render(
            request, f"Process {info.id[:12]}", "".join(sections), "process", status_code
        )

    def _steps(self, info: ProcessInfo) -> str:
        if info.kind != "process":
            return ""
        items = []
        for index, name in enumerate(info.steps):
            state = "done" if index < info.steps_done else "pending"
            if index == info.steps_done:
                if info.status in LIVE_STATUSES:
                    state = "current"
                elif info.status in (Status.ERROR, Status.TIMEOUT):
                    state = "failed"
                elif info.status is Status.CANCELLED:
                    state = "stopped"
                elif info.status is Status.INTERRUPTED:
                    state = "paused"
            items.append(f'<li class="step {state}">{e(name)}</li>')
        progress = ""
        if info.progress is not None:
            message = f" {e(info.progress_message)}" if info.progress_message else ""
            progress = (
                f'<p>step progress <progress max="1" value="{e(info.progress)}"></progress>'
                f"{message}</p>"
            )
        return (
            f'<h2>Steps <progress id="steps-progress" max="{e(info.steps_total)}"'
            f' value="{e(info.steps_done)}"></progress> {e(info.steps_done)}/'
            f'{e(info.steps_total)}</h2><ol class="steps">{"".join(items)}</ol>{progress}'
        )

    def _error(self, info: ProcessInfo) -> str:
        error = info.error
        if error is None:
            return ""
        step = f" (step {e(error.step)})" if error.step else ""
        trace = f'<pre class="traceback">{e(error.traceback)}</pre>' if error.traceback else ""
        return (
            f'<h2>Error</h2><p class="error"><strong>{e(error.type)}</strong>{step}: '
            f"{e(error.message)}</p>{trace}"
        )

    def _actions(self, info: ProcessInfo, root: str, csrf: str, proceed_text: str | None) -> str:
        if self.policy.read_only:
            return '<p class="muted">Read-only dashboard: no actions.</p>'
        base = f"{root}/processes/{info.id}"
        buttons = []
        if not info.status.is_terminal:
            buttons.append(form_button(f"{base}/cancel", "Cancel", csrf, kind="danger"))
        if info.status is Status.RUNNING:
            buttons.append(form_button(f"{base}/suspend", "Suspend", csrf))
        if info.status is Status.SUSPENDED:
            buttons.append(form_button(f"{base}/resume", "Resume", csrf))
        if info.status.is_terminal:
            buttons.append(form_button(f"{base}/restart", "Restart", csrf))
        proceed = ""
        if info.status is Status.INTERRUPTED:
            text = proceed_text if proceed_text is not None else pretty_json(info.output or {})
            proceed = (
                f'<form method="post" action="{e(base)}/proceed" id="proceed">'
                f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                '<label for="proceed-data">Paused output (JSON object), merged with what you'
                " change:</label>"
                f'<textarea id="proceed-data" name="data" rows="10">{e(text)}</textarea>'
                '<p class="error" id="proceed-error" hidden></p>'
                '<button type="submit" class="primary">Proceed</button></form>'
            )
        return f'<div class="actions">{"".join(buttons)}</div>{proceed}'

    async def _change(self, request: Request) -> tuple[dict[str, str], Response | None]:
        """A form that changes something: its values, or the response that refuses it
        (not signed in, read-only, cross-site)."""
        if not self.policy.authenticated(request):
            return {}, self._login_redirect(request)
        if self.policy.read_only:
            return {}, self._forbidden(request, "This dashboard is read-only.")
        values, why = await self._csrf(request)
        if why is not None:
            return {}, self._forbidden(request, f"Refused: {why}.")
        return values, None

    async def act(self, request: Request) -> Response:
        values, refused = await self._change(request)
        if refused is not None:
            return refused
        manager: Manager = await self.holder.get()
        process_id, action = request.path_params["id"], request.path_params["action"]
        path = f"/processes/{process_id}"
        try:
            if action == "cancel":
                await manager.cancel(process_id)
            elif action == "suspend":
                await manager.suspend(process_id)
            elif action == "resume":
                await manager.resume(process_id)
            elif action == "restart":
                path = f"/processes/{await manager.restart(process_id)}"
            elif action == "proceed":
                return await self._proceed(request, manager, process_id, values.get("data", ""))
            else:
                return self._render(request, "Not found", "<p>No such action.</p>", "error", 404)
        except AiobgprocError as exc:
            return self._back(request, path, str(exc))
        return self._back(request, path)

    async def _proceed(
        self, request: Request, manager: Manager, process_id: str, text: str
    ) -> Response:
        try:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict):
                raise InvalidSpecError("the data must be a JSON object")
            await manager.proceed(process_id, data)
        except (ValueError, AiobgprocError) as exc:
            info = await manager.info(process_id)
            bad_input = isinstance(exc, ValueError)  # InvalidSpecError is one too
            return await self._process_page(
                request,
                manager,
                info,
                f"Could not proceed: {exc}",
                proceed_text=text,
                status_code=422 if bad_input else 409,
            )
        return self._back(request, f"/processes/{process_id}")

    # -- queues and schedules ---------------------------------------------------------------

    async def queues(self, request: Request) -> Response:
        if not self.policy.authenticated(request):
            return self._login_redirect(request)
        manager: Manager = await self.holder.get()
        root = root_of(request)
        csrf = self._token(request)
        rows = []
        for queue in await manager.queues():
            base = f"{root}/queues/{quote(queue.name, safe='')}"
            actions = ""
            if not self.policy.read_only:
                toggle = "resume" if queue.paused else "pause"
                actions = form_button(f"{base}/{toggle}", toggle.capitalize(), csrf) + (
                    f'<form method="post" action="{e(base)}/limit" class="inline">'
                    f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                    f'<input name="limit" size="4" placeholder="none" aria-label="limit"'
                    f' value="{e(queue.limit if queue.limit is not None else "")}">'
                    "<button>Set limit</button></form>"
                )
            rows.append(
                f"<tr><td>{e(queue.name)}</td><td>{e(queue.limit or '—')}</td>"
                f"<td>{'paused' if queue.paused else 'active'}</td><td>{e(queue.queued)}</td>"
                f"<td>{e(queue.running)}</td><td>{actions}</td></tr>"
            )
        schedules = []
        for schedule in await manager.schedules():
            last = schedule.last_process_id
            link = f'<a href="{e(root)}/processes/{e(last)}">{e(last[:12])}</a>' if last else ""
            when = schedule.cron or f"every {schedule.every:g} s"
            schedules.append(
                f"<tr><td>{e(schedule.name)}</td><td>{e(when)}</td>"
                f"<td>{e(schedule.next_run_at.isoformat())}</td>"
                f"<td>{e(schedule.last_run_at.isoformat() if schedule.last_run_at else '')}</td>"
                f"<td>{link}</td></tr>"
            )
        error = request.query_params.get("error")
        body = (
            "<h1>Queues</h1>"
            + (f'<p class="error">{e(error)}</p>' if error else "")
            + '<div class="table"><table><thead><tr><th>queue</th><th>limit</th><th>state</th>'
            "<th>queued</th><th>running</th><th></th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></div><h2>Schedules</h2>"
            '<div class="table"><table><thead><tr><th>name</th><th>when</th><th>next</th>'
            "<th>last</th><th>last process</th></tr></thead><tbody>"
            + "".join(schedules)
            + "</tbody></table></div>"
        )
        return self._render(request, "Queues", body, "queues")

    async def queue_act(self, request: Request) -> Response:
        values, refused = await self._change(request)
        if refused is not None:
            return refused
        manager: Manager = await self.holder.get()
        name, action = request.path_params["name"], request.path_params["action"]
        try:
            if action == "pause":
                await manager.pause_queue(name)
            elif action == "resume":
                await manager.resume_queue(name)
            elif action == "limit":
                text = values.get("limit", "").strip()
                try:
                    limit = None if text in ("", "none") else int(text)
                except ValueError:
                    raise InvalidSpecError(f"a limit is a whole number, not {text!r}") from None
                await manager.set_queue_limit(name, limit)
            else:
                return self._render(request, "Not found", "<p>No such action.</p>", "error", 404)
        except AiobgprocError as exc:
            return self._back(request, "/queues", str(exc))
        return self._back(request, "/queues")

    # -- login ------------------------------------------------------------------------------

    async def login_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        csrf = self._token(request)
        target = request.query_params.get("next", "")
        body = (
            "<h1>Sign in</h1>"
            + (f'<p class="error">{e(error)}</p>' if error else "")
            + f'<form method="post" action="{e(root_of(request))}/login" class="login">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<input type="hidden" name="next" value="{e(target)}">'
            '<label>Token <input type="password" name="token" autocomplete="current-password"'
            ' autofocus></label><button class="primary">Sign in</button></form>'
        )
        response = self._render(request, "Sign in", body, "login", status)
        return response

    async def login(self, request: Request) -> Response:
        values, why = await self._csrf(request)
        if why is not None:
            return self._forbidden(request, f"Refused: {why}.")
        if not self.policy.login_ok(values.get("token", "")):
            return await self.login_form(request, "Wrong token.", 401)
        root = root_of(request)
        target = values.get("next", "")
        if not target.startswith("/") or target.startswith("//"):
            target = f"{root}/"  # never a redirect off this site
        response = RedirectResponse(target, status_code=303)
        session = self.policy.session_value
        assert session is not None
        response.set_cookie(
            SESSION_COOKIE, session, httponly=True, samesite="strict", path=root or "/"
        )
        return response

    async def logout(self, request: Request) -> Response:
        _, why = await self._csrf(request)
        if why is not None:
            return self._forbidden(request, f"Refused: {why}.")
        root = root_of(request)
        response = RedirectResponse(f"{root}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=root or "/")
        return response


def _unavailable(handler: Any) -> Any:
    """A store that cannot be opened or read: a page that says why (503), no traceback."""

    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except StoreError as exc:
            body = f'<h1>Store unavailable</h1><p class="error">{e(exc)}</p>'
            text = document("Store unavailable", body, root=root_of(request), csrf="", page="error")
            return HTMLResponse(text, status_code=503)
        return response

    return endpoint


def routes(holder: Any, policy: Policy) -> list[Route]:
    pages = Pages(holder, policy)
    return [
        Route(path, _unavailable(handler), methods=[method])
        for path, handler, method in (
            ("/", pages.index, "GET"),
            ("/processes/{id}", pages.process, "GET"),
            ("/processes/{id}/{action}", pages.act, "POST"),
            ("/queues", pages.queues, "GET"),
            ("/queues/{name}/{action}", pages.queue_act, "POST"),
            ("/login", pages.login_form, "GET"),
            ("/login", pages.login, "POST"),
            ("/logout", pages.logout, "POST"),
        )
    ]
