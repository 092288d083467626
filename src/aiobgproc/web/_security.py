"""Who may use the dashboard, and which requests may change anything.

- ``token``: every request needs ``Authorization: Bearer <token>``, or the session cookie
  the login form sets (HttpOnly, SameSite=Strict; its value is derived from the token, never
  the token itself). Without a token, anyone who reaches the port may (``aiobgproc web``
  binds to loopback unless it is given a token).
- Every state-changing request is a POST, refused (403) when it comes from another site:
  an ``Origin`` that is not ours, a ``Sec-Fetch-Site`` other than same-origin, or, for a
  browser's request (cookies, Origin), a CSRF token that does not match the per-browser
  cookie (double submit: the pages carry the value, a cross-site page cannot read it). A
  request authenticated by the bearer header cannot be forged by another site's page.
- ``read_only``: every change is refused (403).
- Every response forbids inline script and framing (a Content-Security-Policy), so no HTML
  a process wrote (its label, meta or output, escaped anyway) could run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from starlette.requests import Request

SESSION_COOKIE: Final = "aiobgproc_session"
CSRF_COOKIE: Final = "aiobgproc_csrf"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
        b" frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Policy:
    def __init__(self, token: str | None, read_only: bool) -> None:
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string or None")
        self.token = token
        self.read_only = read_only
        self._session = (
            None
            if token is None
            else hmac.new(token.encode(), b"aiobgproc session", hashlib.sha256).hexdigest()
        )

    @property
    def session_value(self) -> str | None:
        return self._session

    def bearer_ok(self, request: Request) -> bool:
        if self.token is None:
            return False
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    def authenticated(self, request: Request) -> bool:
        if self.token is None or self.bearer_ok(request):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        assert self._session is not None
        return hmac.compare_digest(cookie.encode(), self._session.encode())

    def login_ok(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def cross_site(self, request: Request, form_token: str | None) -> str | None:
        """Why a POST must be refused as a cross-site request (None: it may go on)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != _own_origin(request):
            return "a request from another site"
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return "a request from another site"
        if self.bearer_ok(request):
            return None
        browser = origin is not None or site is not None or bool(request.cookies)
        if not browser:
            return None  # a script (curl, httpx) on a trusted host: nothing to forge
        expected = request.cookies.get(CSRF_COOKIE, "")
        given = form_token or request.headers.get(CSRF_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return "a missing or wrong CSRF token"
        return None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


async def with_headers(
    app: ASGIApp, root_path: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Call ``app`` with HEADERS added to every HTTP response, and ``root_path`` (a proxy's
    stripped prefix) added to the scope's."""
    if root_path and scope["type"] in ("http", "websocket"):
        scope = dict(scope)
        scope["root_path"] = scope.get("root_path", "") + root_path
    if scope["type"] != "http":
        await app(scope, receive, send)
        return

    async def send_with_headers(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.extend(HEADERS)
            message = {**message, "headers": headers}
        await send(message)

    await app(scope, receive, send_with_headers)
