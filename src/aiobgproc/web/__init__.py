"""The web dashboard (``pip install 'aiobgproc[web]'``): ``create_app(...)`` returns an ASGI
application (Starlette) with pages for people and a JSON API under ``/api/``; ``aiobgproc
web`` serves it with uvicorn. See docs/web.md."""

from __future__ import annotations

from ._app import create_app

__all__ = ["create_app"]
