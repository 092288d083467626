"""``aiobgproc web``: the dashboard (aiobgproc.web) served by uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

from ._cli_format import CliError, Out
from .manager import Manager

Add = Callable[[str, Any, str], argparse.ArgumentParser]
TOKEN_VARIABLE = "AIOBGPROC_WEB_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here: an address in use is one line, before any output."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CliError(f"cannot serve on {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot serve on {_url(host, port)}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def loopback_only(app: Any, host: str) -> Any:
    """Refuse (400) a request whose Host is not this loopback address: without a token, a
    page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) would otherwise count as
    the dashboard's own site."""
    allowed = {host.strip("[]").lower(), "localhost", "127.0.0.1", "::1"}

    async def checked(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            name = headers.get(b"host", b"").decode("latin-1").lower()
            name = name[1 : name.find("]")] if name.startswith("[") else name.rsplit(":", 1)[0]
            if name not in allowed:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                    }
                )
                await send({"type": "http.response.body", "body": b"Invalid host header"})
                return
        await app(scope, receive, send)

    return checked


async def cmd_web(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    if not is_loopback(args.host) and token is None:
        raise CliError(
            f"refusing to serve on {args.host} without a token: anyone who reaches it could"
            f" control your processes (give --token, or set {TOKEN_VARIABLE})"
        )
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0 to 65535, not {args.port}")
    try:
        import uvicorn

        from .web import create_app
    except ImportError as exc:
        raise CliError(
            f"the dashboard needs the web extra ({exc.name} is missing):"
            " pip install 'aiobgproc[web]'"
        ) from None
    # The store first: one that cannot be opened is one line, not a server that fails.
    async with Manager(args.store, run=False) as manager:
        app: Any = create_app(manager=manager, token=token, read_only=args.read_only)
        if token is None:
            app = loopback_only(app, args.host)
        sock = _bind(args.host, args.port)
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        Out().line(f"aiobgproc dashboard on {_url(args.host, sock.getsockname()[1])}")
        try:
            await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            sock.close()
    return 0


def add_web_command(add: Add) -> None:
    web = add("web", cmd_web, "serve the web dashboard (needs the web extra)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument("--port", type=int, default=8080, help="port (8080)")
    web.add_argument(
        "--token", help=f"require this token (or set {TOKEN_VARIABLE}); needed off loopback"
    )
    web.add_argument("--read-only", action="store_true", help="refuse every change (403)")
