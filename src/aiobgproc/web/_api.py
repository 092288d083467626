"""The JSON API under ``/api/`` (docs/web.md): what the pages show and do, for scripts.

An unknown id is 404, a state that does not allow the action 409, bad input 422; a missing
or wrong token 401, a change refused (read-only, cross-site) 403.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._output_reading import STREAM_NAMES, check_stream, check_tail, output_chunks
from ..errors import (
    InvalidSpecError,
    InvalidStateError,
    ProcessNotFoundError,
    ScheduleNotFoundError,
    StoreError,
)
from ..manager import Manager
from ._security import Policy

Handler = Callable[[Request, Manager], Awaitable[Response]]


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def guarded(holder: Any, policy: Policy, handler: Handler, *, write: bool = False) -> Any:
    """``handler`` behind the token, the write checks, and our errors as HTTP statuses."""

    async def endpoint(request: Request) -> Response:
        if not policy.authenticated(request):
            return JSONResponse(
                {"error": "a token is required"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        if write:
            if policy.read_only:
                return problem(403, "this dashboard is read-only")
            why = policy.cross_site(request, None)
            if why is not None:
                return problem(403, f"refused: {why}")
        try:
            return await handler(request, await holder.get())
        except (ProcessNotFoundError, ScheduleNotFoundError) as exc:
            return problem(404, str(exc))
        except InvalidStateError as exc:
            return problem(409, str(exc))
        except InvalidSpecError as exc:
            return problem(422, str(exc))
        except StoreError as exc:  # the store cannot be opened or read: say why, no traceback
            return problem(503, str(exc))

    return endpoint


def whole_number(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidSpecError(f"{name} must be a whole number, not {text!r}") from None


def list_options(request: Request) -> dict[str, Any]:
    """list()'s arguments from the query string (status repeated or comma-separated)."""
    params = request.query_params
    statuses = [part for value in params.getlist("status") for part in value.split(",") if part]
    limit = whole_number(request, "limit")
    options: dict[str, Any] = {"status": statuses or None, "limit": 50 if limit is None else limit}
    for name in ("queue", "label", "key", "before"):
        if params.get(name):
            options[name] = params[name]
    return options


async def list_processes(request: Request, manager: Manager) -> Response:
    infos = await manager.list(**list_options(request))
    return JSONResponse({"processes": [info.to_dict() for info in infos]})


async def one_process(request: Request, manager: Manager) -> Response:
    return JSONResponse((await manager.info(request.path_params["id"])).to_dict())


def wants_events(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def event_stream(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def process_output(request: Request, manager: Manager) -> Response:
    process_id = request.path_params["id"]
    stream = request.query_params.get("stream") or None
    tail = whole_number(request, "tail")
    check_stream(stream)  # bad input is 422 before anything is sent
    check_tail(tail)
    if not wants_events(request):
        return Response(
            await manager.output(process_id, stream=stream, tail=tail),
            media_type="text/plain; charset=utf-8",
        )
    await manager.info(process_id)  # 404 before the stream starts
    chunks = output_chunks(manager, process_id, stream=stream, tail=tail, follow=True)

    async def events() -> AsyncIterator[bytes]:
        async for seq, code, data in chunks:
            text = data.decode("utf-8", errors="replace")
            yield sse("chunk", {"seq": seq, "stream": STREAM_NAMES.get(code), "data": text})
        info = await manager.info(process_id)
        yield sse("end", {"status": info.status.value})

    return event_stream(events())


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidSpecError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidSpecError("the body must be a JSON object")
    return body


async def cancel(request: Request, manager: Manager) -> Response:
    return JSONResponse((await manager.cancel(request.path_params["id"])).to_dict())


async def proceed(request: Request, manager: Manager) -> Response:
    body = await json_body(request)
    process_id = await manager.proceed(request.path_params["id"], body.get("data"))
    return JSONResponse((await manager.info(process_id)).to_dict())


async def restart(request: Request, manager: Manager) -> Response:
    body = await json_body(request)
    new_id = await manager.restart(
        request.path_params["id"], data=body.get("data"), from_step=body.get("from_step")
    )
    return JSONResponse((await manager.info(new_id)).to_dict(), status_code=201)


async def suspend(request: Request, manager: Manager) -> Response:
    await manager.suspend(request.path_params["id"])
    return JSONResponse((await manager.info(request.path_params["id"])).to_dict())


async def resume(request: Request, manager: Manager) -> Response:
    await manager.resume(request.path_params["id"])
    return JSONResponse((await manager.info(request.path_params["id"])).to_dict())


async def events(request: Request, manager: Manager) -> Response:
    since = whole_number(request, "since")
    process_id = request.query_params.get("process_id") or None
    if process_id is not None:
        await manager.info(process_id)  # 404 before the stream starts
    stream = manager.events(
        since=since, process_id=process_id, queue=request.query_params.get("queue") or None
    )

    async def lines() -> AsyncIterator[bytes]:
        yield b": connected\n\n"  # headers and a first byte: the browser knows it is open
        async for event in stream:
            yield f"id: {event.seq}\n".encode() + sse("process", event.to_dict())

    return event_stream(lines())


async def queues(request: Request, manager: Manager) -> Response:
    return JSONResponse({"queues": [queue.to_dict() for queue in await manager.queues()]})


async def queue_action(request: Request, manager: Manager) -> Response:
    name, action = request.path_params["name"], request.path_params["action"]
    if action not in ("pause", "resume", "limit"):
        return problem(404, f"no queue action {action!r}: pause, resume or limit")
    if action == "pause":
        await manager.pause_queue(name)
    elif action == "resume":
        await manager.resume_queue(name)
    else:  # limit
        body = await json_body(request)
        await manager.set_queue_limit(name, body.get("limit"))
    return await queues(request, manager)


async def schedules(request: Request, manager: Manager) -> Response:
    found = await manager.schedules()
    return JSONResponse({"schedules": [schedule.to_dict() for schedule in found]})


def routes(holder: Any, policy: Policy) -> list[Route]:
    def get(path: str, handler: Handler) -> Route:
        return Route(path, guarded(holder, policy, handler), methods=["GET"])

    def post(path: str, handler: Handler) -> Route:
        return Route(path, guarded(holder, policy, handler, write=True), methods=["POST"])

    return [
        get("/api/processes", list_processes),
        get("/api/processes/{id}", one_process),
        get("/api/processes/{id}/output", process_output),
        post("/api/processes/{id}/cancel", cancel),
        post("/api/processes/{id}/proceed", proceed),
        post("/api/processes/{id}/restart", restart),
        post("/api/processes/{id}/suspend", suspend),
        post("/api/processes/{id}/resume", resume),
        get("/api/events", events),
        get("/api/queues", queues),
        post("/api/queues/{name}/{action:str}", queue_action),
        get("/api/schedules", schedules),
    ]
