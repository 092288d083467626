"""create_app(): the dashboard as an ASGI application (Starlette).

It opens its Manager (``run=False``: it runs nothing, workers do) on the first request: a
Mount inside another app does not run the mounted app's lifespan. It closes it with its
lifespan when that runs. Given a ``manager``, it uses that one and never closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..manager import Manager
from . import _api, _pages
from ._security import Policy, Receive, Scope, Send, with_headers

STATIC = Path(__file__).resolve().parent / "static"


class ManagerHolder:
    """The app's Manager: given, or opened on first use (once, whoever asks first)."""

    def __init__(self, store: str | os.PathLike[str] | None, manager: Manager | None) -> None:
        self._store = store
        self._manager = manager
        self._owned = manager is None
        self._lock = asyncio.Lock()

    async def get(self) -> Manager:
        if self._manager is not None:
            return self._manager
        async with self._lock:
            if self._manager is None:
                manager = Manager(self._store, run=False)
                await manager.open()
                self._manager = manager
        return self._manager

    async def close(self) -> None:
        manager = self._manager
        if self._owned and manager is not None:
            self._manager = None
            await manager.close()


class Dashboard:
    """The ASGI application create_app returns (a Starlette app inside, with headers)."""

    def __init__(self, app: Starlette, holder: ManagerHolder, root_path: str) -> None:
        self.app = app
        self._holder = holder
        self._root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await with_headers(self.app, self._root_path, scope, receive, send)

    async def close(self) -> None:
        """Close the store it opened (its lifespan does this when it runs; a Mount inside
        another app does not run it: call this from that app's lifespan)."""
        await self._holder.close()


def create_app(
    store: str | os.PathLike[str] | None = None,
    *,
    manager: Manager | None = None,
    token: str | None = None,
    read_only: bool = False,
    root_path: str = "",
) -> Dashboard:
    """The dashboard: pages for people, a JSON API under ``/api/`` (docs/web.md)."""
    holder = ManagerHolder(store, manager)
    policy = Policy(token, read_only)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await holder.close()

    routes: list[Any] = [
        *_api.routes(holder, policy),
        *_pages.routes(holder, policy),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.holder = holder
    app.state.policy = policy
    return Dashboard(app, holder, root_path.rstrip("/"))
