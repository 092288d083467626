"""examples/fastapi_app.py end to end: a real uvicorn server on loopback, a real HTTP client."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from helpers.served import served

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from fastapi_app import create_app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        served(create_app(str(tmp_path / "web.db"))) as base,
        httpx.AsyncClient(base_url=base, timeout=20) as http,
    ):
        yield http


async def _wait_status(
    client: httpx.AsyncClient, process_id: str, status: str
) -> dict[str, object]:
    async with asyncio.timeout(20):
        while True:
            body: dict[str, object] = (await client.get(f"/processes/{process_id}")).json()
            if body["status"] == status:
                return body
            await asyncio.sleep(0.02)


async def test_command_output_streams_live_over_server_sent_events(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    argv = ["sh", "-c", f'echo first; while [ ! -e "{gate}" ]; do sleep 0.02; done; echo second']
    started = await client.post("/commands", json={"argv": argv})
    assert started.status_code == 201
    process_id = started.json()["id"]
    events: list[str] = []
    async with client.stream("GET", f"/processes/{process_id}/output") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line:
                events.append(line)
            if line == "data: first":
                # The first line arrived while the command still runs: the stream is live.
                assert (await client.get(f"/processes/{process_id}")).json()["status"] == (
                    "running"
                )
                gate.touch()
    assert events == ["data: first", "data: second", "event: end", "data: finished"]


async def test_step_process_pauses_and_proceeds_over_http(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/processes",
        json={
            "steps": {
                "tag": {"target": "stepmods.basic:add", "args": ["tagged"], "interrupt": True},
                "done": {"target": "stepmods.basic:add", "args": ["done"]},
            },
            "data": {"text": "hello"},
        },
    )
    assert response.status_code == 201
    process_id = response.json()["id"]
    paused = await _wait_status(client, process_id, "interrupted")
    assert paused["output"] == {"text": "hello", "tagged": True}
    proceeded = await client.post(f"/processes/{process_id}/proceed", json={"ok": 1})
    assert proceeded.status_code == 200
    finished = await _wait_status(client, process_id, "finished")
    assert finished["output"] == {"text": "hello", "tagged": True, "ok": 1, "done": True}
    unknown = await client.post(
        "/processes", json={"steps": {"x": {"target": "no_such_module:step"}}}
    )
    assert unknown.status_code == 422  # refused before anything is stored or run


async def test_cancel_and_unknown_ids_over_http(client: httpx.AsyncClient) -> None:
    started = await client.post("/commands", json={"argv": ["sleep", "30"]})
    process_id = started.json()["id"]
    await _wait_status(client, process_id, "running")
    cancelled = await client.post(f"/processes/{process_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.get("/processes/nope")).status_code == 404
    assert (await client.post("/processes/nope/cancel")).status_code == 404
    conflict = await client.post(f"/processes/{process_id}/proceed", json={})
    assert conflict.status_code == 409
    bad = await client.post("/commands", json={"argv": []})
    assert bad.status_code == 422
    # The dashboard, mounted under /dashboard, shows it (same store, its own connection).
    page = await client.get("/dashboard/")
    assert page.status_code == 200
    assert f'href="/dashboard/processes/{process_id}"' in page.text
    info = await client.get(f"/dashboard/api/processes/{process_id}")
    assert info.json()["status"] == "cancelled"
