"""``aiobgproc web``: the dashboard (aiobgproc.web) served by uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from ._cli_format import CliError, Out

Add = Callable[[str, Any, str], argparse.ArgumentParser]
TOKEN_VARIABLE = "AIOBGPROC_WEB_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    app = create_app(args.store, token=token, read_only=args.read_only)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    Out().line(f"aiobgproc dashboard on http://{args.host}:{args.port}/")
    await server.serve()
    return 0


def add_web_command(add: Add) -> None:
    web = add("web", cmd_web, "serve the web dashboard (needs the web extra)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument("--port", type=int, default=8080, help="port (8080)")
    web.add_argument(
        "--token", help=f"require this token (or set {TOKEN_VARIABLE}); needed off loopback"
    )
    web.add_argument("--read-only", action="store_true", help="refuse every change (403)")
