"""aiobgproc in a FastAPI app: start, inspect, proceed, cancel, and stream output live (SSE).

    pip install 'aiobgproc[web]'
    AIOBGPROC_STORE=jobs.db uvicorn examples.fastapi_app:app

    curl -X POST localhost:8000/commands -H 'content-type: application/json' \\
         -d '{"argv": ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 1; done"]}'
    curl -N localhost:8000/processes/ID/output        # Server-Sent Events, live
    curl localhost:8000/processes/ID
    open http://localhost:8000/dashboard/               # the dashboard, mounted

The Manager lives as long as the app: opened in the lifespan, closed at shutdown.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from aiobgproc import (
    Command,
    InvalidSpecError,
    InvalidStateError,
    Manager,
    Process,
    ProcessNotFoundError,
    Step,
)
from aiobgproc.web import create_app as create_dashboard


class CommandIn(BaseModel):
    argv: list[str]
    cwd: str | None = None
    timeout: float | None = None


class StepIn(BaseModel):
    target: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    interrupt: bool = False


class ProcessIn(BaseModel):
    steps: dict[str, StepIn]
    data: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = None


class Started(BaseModel):
    id: str


def create_app(store: str | None = None) -> FastAPI:
    """The app, on ``store`` (default: $AIOBGPROC_STORE, else aiobgproc's default file)."""

    # The dashboard, mounted under /dashboard: it opens the store on its first request and
    # is closed here (a mounted app's own lifespan does not run).
    dashboard = create_dashboard(
        store or os.environ.get("AIOBGPROC_STORE"), token=os.environ.get("AIOBGPROC_WEB_TOKEN")
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Manager(store or os.environ.get("AIOBGPROC_STORE")) as manager:
            app.state.manager = manager
            yield
        await dashboard.close()

    app = FastAPI(title="aiobgproc example", lifespan=lifespan)
    app.mount("/dashboard", dashboard)

    def manager_of(request: Request) -> Manager:
        manager: Manager = request.app.state.manager
        return manager

    @app.exception_handler(ProcessNotFoundError)
    async def not_found(request: Request, exc: ProcessNotFoundError) -> Any:
        raise HTTPException(404, str(exc))

    @app.post("/commands", status_code=201)
    async def start_command(body: CommandIn, request: Request) -> Started:
        try:
            process_id = await manager_of(request).start(
                Command(body.argv, cwd=body.cwd), timeout=body.timeout
            )
        except InvalidSpecError as exc:
            raise HTTPException(422, str(exc)) from None
        return Started(id=process_id)

    @app.post("/processes", status_code=201)
    async def start_process(body: ProcessIn, request: Request) -> Started:
        steps = {
            name: Step(step.target, *step.args, interrupt=step.interrupt, **step.kwargs)
            for name, step in body.steps.items()
        }
        try:
            process_id = await manager_of(request).start(
                Process(steps, timeout=body.timeout), body.data
            )
        except InvalidSpecError as exc:
            raise HTTPException(422, str(exc)) from None
        return Started(id=process_id)

    @app.get("/processes/{process_id}")
    async def info(process_id: str, request: Request) -> dict[str, Any]:
        try:
            return (await manager_of(request).info(process_id)).to_dict()
        except ProcessNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/processes/{process_id}/proceed")
    async def proceed(
        process_id: str, request: Request, data: dict[str, Any] | None = None
    ) -> Started:
        try:
            await manager_of(request).proceed(process_id, data)
        except ProcessNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidStateError as exc:
            raise HTTPException(409, str(exc)) from None
        except InvalidSpecError as exc:
            raise HTTPException(422, str(exc)) from None
        return Started(id=process_id)

    @app.post("/processes/{process_id}/cancel")
    async def cancel(process_id: str, request: Request) -> dict[str, Any]:
        try:
            return (await manager_of(request).cancel(process_id)).to_dict()
        except ProcessNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/processes/{process_id}/output")
    async def output(process_id: str, request: Request) -> StreamingResponse:
        """The output as Server-Sent Events: one ``data:`` event per line, live, then an
        ``end`` event with the final status."""
        manager = manager_of(request)
        try:
            await manager.info(process_id)
        except ProcessNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None

        async def events() -> AsyncIterator[str]:
            pending = ""
            async for chunk in manager.stream_output(process_id):
                pending += chunk.decode("utf-8", "backslashreplace")
                *lines, pending = pending.split("\n")
                for line in lines:
                    yield f"data: {line}\n\n"
            if pending:
                yield f"data: {pending}\n\n"
            status = (await manager.info(process_id)).status
            yield f"event: end\ndata: {status}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


app = create_app()
