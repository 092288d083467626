"""The dashboard's JSON API and its security (API.md "The web dashboard"), against a real
uvicorn server on loopback: statuses, live output, every action, and each attack."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from aiobgproc import Command, Manager, Process, Status, Step
from aiobgproc.web import create_app
from helpers.served import free_port, served
from helpers.waiting import until_output_contains, until_status

WAIT = 30.0
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_api_reads_acts_and_maps_errors(store_url: str) -> None:
    async with (
        Manager(store_url) as manager,
        served(create_app(manager=manager)) as base,
        httpx.AsyncClient(base_url=base, timeout=WAIT) as http,
    ):
        if True:
            done = await manager.start(
                Command(["sh", "-c", "echo out; echo err >&2"]), label="etl", queue="q1"
            )
            await manager.wait_for(done, timeout=WAIT)
            paused = await manager.start(
                Process({"review": Step("stepmods.pausing:Review")}), {"title": "t"}
            )
            await until_status(manager, paused, Status.INTERRUPTED, timeout=WAIT)

            listed = (await http.get("/api/processes", params={"queue": "q1"})).json()
            assert [p["id"] for p in listed["processes"]] == [done]
            assert (await http.get("/api/processes", params={"label": "etl"})).json()["processes"][
                0
            ]["id"] == done
            page = (await http.get("/api/processes", params={"limit": 1})).json()["processes"]
            assert [p["id"] for p in page] == [paused]
            after = await http.get("/api/processes", params={"limit": 1, "before": paused})
            assert [p["id"] for p in after.json()["processes"]] == [done]
            both = await http.get("/api/processes", params=[("status", "finished,interrupted")])
            assert {p["id"] for p in both.json()["processes"]} == {done, paused}
            assert (await http.get(f"/api/processes/{done}")).json()["label"] == "etl"

            assert (await http.get(f"/api/processes/{done}/output")).content in (
                b"out\nerr\n",
                b"err\nout\n",
            )
            stderr = await http.get(f"/api/processes/{done}/output", params={"stream": "stderr"})
            assert stderr.content == b"err\n"
            events = await http.get(
                f"/api/processes/{done}/output", headers={"accept": "text/event-stream"}
            )
            assert events.headers["content-type"].startswith("text/event-stream")
            assert '"stream": "stderr"' in events.text
            assert "event: end" in events.text

            # Errors: unknown id 404, a state that does not allow it 409, bad input 422.
            assert (await http.get("/api/processes/nope")).status_code == 404
            assert (await http.post("/api/processes/nope/cancel")).status_code == 404
            assert (await http.get("/api/processes", params={"status": "x"})).status_code == 422
            assert (await http.get("/api/processes", params={"limit": "z"})).status_code == 422
            assert (await http.get("/api/processes", params={"limit": "0"})).status_code == 422
            sse = {"accept": "text/event-stream"}
            for bad in ({"tail": "0"}, {"stream": "bogus"}):
                for headers in ({}, sse):  # the live stream too: 422 before it starts
                    response = await http.get(
                        f"/api/processes/{done}/output", params=bad, headers=headers
                    )
                    assert response.status_code == 422, (bad, headers)
            unknown = await http.get("/api/events", params={"process_id": "0" * 32})
            assert unknown.status_code == 404
            assert (await http.post(f"/api/processes/{done}/proceed")).status_code == 409
            assert (await http.post(f"/api/processes/{done}/suspend")).status_code == 409
            not_json = await http.post(f"/api/processes/{paused}/proceed", content=b"{nope")
            assert not_json.status_code == 422
            not_object = await http.post(f"/api/processes/{paused}/proceed", json={"data": [1, 2]})
            assert not_object.status_code == 422

            proceeded = await http.post(
                f"/api/processes/{paused}/proceed", json={"data": {"approved": True}}
            )
            assert proceeded.status_code == 200
            info = await manager.wait_for(paused, timeout=WAIT)
            assert info.output is not None
            assert info.output["approved"] is True
            assert info.output["title"] == "t"

            restarted = await http.post(f"/api/processes/{done}/restart", json={})
            assert restarted.status_code == 201
            assert restarted.json()["restarted_from"] == done

            ticker = await manager.start(Command(["sh", "-c", "echo ready; sleep 60"]))
            await until_output_contains(manager, ticker, b"ready")
            suspended = await http.post(f"/api/processes/{ticker}/suspend")
            assert suspended.json()["status"] == "suspended"
            resumed = await http.post(f"/api/processes/{ticker}/resume")
            assert resumed.json()["status"] == "running"
            cancelled = await http.post(f"/api/processes/{ticker}/cancel")
            assert cancelled.json()["status"] == "cancelled"
            await manager.wait_for(restarted.json()["id"], timeout=WAIT)


async def test_the_event_stream_and_queues(manager: Manager) -> None:
    async with (
        served(create_app(manager=manager)) as base,
        httpx.AsyncClient(base_url=base, timeout=WAIT) as http,
    ):
        if True:
            seen: list[dict[str, Any]] = []

            async def follow() -> None:
                headers = {"accept": "text/event-stream"}
                async with http.stream("GET", "/api/events", headers=headers) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            seen.append(json.loads(line[6:]))
                            if seen[-1]["status"] == "finished":
                                return

            following = asyncio.ensure_future(follow())
            await asyncio.sleep(0.3)  # the stream starts "from now": let it connect first
            process_id = await manager.start(Command(["true"]), queue="fast")
            await asyncio.wait_for(following, WAIT)
            assert [event["process_id"] for event in seen] == [process_id] * len(seen)
            assert seen[0]["status"] == "queued"
            assert (await http.post("/api/queues/fast/pause")).status_code == 200
            limited = await http.post("/api/queues/fast/limit", json={"limit": 2})
            queue = next(q for q in limited.json()["queues"] if q["name"] == "fast")
            assert queue["paused"] is True
            assert queue["limit"] == 2
            assert (await http.post("/api/queues/fast/explode")).status_code == 404
            assert (await http.get("/api/schedules")).json() == {"schedules": []}


async def test_tokens_cross_site_requests_and_read_only(manager: Manager) -> None:
    process_id = await manager.start(Command(["sh", "-c", "echo ready; sleep 60"]), label=EVIL)
    await until_output_contains(manager, process_id, b"ready")
    app = create_app(manager=manager, token="s3cret")
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        # No token, a wrong token: 401 for the API, the login form for pages.
        assert (await http.get("/api/processes")).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert (await http.get("/api/processes", headers=wrong)).status_code == 401
        page = await http.get("/", follow_redirects=False)
        assert page.status_code == 303
        assert "/login" in page.headers["location"]
        bearer = {"authorization": "Bearer s3cret"}
        assert (await http.get("/api/processes", headers=bearer)).status_code == 200

        # The login form: CSRF-protected, a wrong token refused, then an HttpOnly cookie.
        form = await http.get("/login")
        csrf = http.cookies["aiobgproc_csrf"]
        assert f'value="{csrf}"' in form.text
        refused = await http.post("/login", data={"token": "s3cret"})
        assert refused.status_code == 403  # no CSRF token
        bad = await http.post("/login", data={"token": "nope", "csrf": csrf})
        assert bad.status_code == 401
        good = await http.post("/login", data={"token": "s3cret", "csrf": csrf, "next": "/"})
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert "s3cret" not in cookie

        # The page escapes what a process brings, and forbids inline script.
        listing = await http.get("/")
        assert listing.status_code == 200
        assert EVIL not in listing.text
        assert "&lt;script&gt;" in listing.text
        assert "script-src 'self'" in listing.headers["content-security-policy"]

        # A forged cross-site POST (a page elsewhere, the cookie sent along) changes nothing.
        forged = await http.post(
            f"/processes/{process_id}/cancel",
            data={"csrf": "guess"},
            headers={"origin": "http://evil.example"},
        )
        assert forged.status_code == 403
        no_token = await http.post(f"/api/processes/{process_id}/cancel")
        assert no_token.status_code == 403
        assert (await manager.info(process_id)).status is Status.RUNNING
        # The same request from our own page goes through.
        ours = await http.post(
            f"/processes/{process_id}/suspend", data={"csrf": csrf}, follow_redirects=False
        )
        assert ours.status_code == 303
        assert (await manager.info(process_id)).status is Status.SUSPENDED

    read_only = create_app(manager=manager, read_only=True)
    async with served(read_only) as base, httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        for action in ("cancel", "resume", "restart", "proceed", "suspend"):
            response = await http.post(f"/api/processes/{process_id}/{action}")
            assert response.status_code == 403, action
        assert (await http.post("/api/queues/default/pause")).status_code == 403
        assert (await http.get(f"/api/processes/{process_id}")).status_code == 200
        page = await http.get(f"/processes/{process_id}")
        assert "Read-only" in page.text
        assert "<button" not in page.text.split("<main>", 1)[1].split("Output", 1)[0]
    assert (await manager.info(process_id)).status is Status.SUSPENDED
    await manager.cancel(process_id)


async def test_mounted_under_a_prefix_and_opened_on_first_request(store_path: Any) -> None:
    async with Manager(store_path) as manager:
        process_id = await manager.start(Command(["true"]))
        await manager.wait_for(process_id, timeout=WAIT)
    outer = FastAPI()
    # Mounted: the dashboard's lifespan does not run; it opens its store when first asked.
    dashboard = create_app(str(store_path))
    outer.router.routes.append(Mount("/dash", app=dashboard))
    async with served(outer) as base, httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        page = await http.get("/dash/")
        assert page.status_code == 200
        assert 'href="/dash/static/app.css"' in page.text
        assert f"/dash/processes/{process_id}" in page.text
        assert (await http.get("/dash/static/app.js")).status_code == 200
        listed = await http.get("/dash/api/processes")
        assert [p["id"] for p in listed.json()["processes"]] == [process_id]
    await dashboard.close()
    # Behind a proxy that strips the prefix: root_path, as uvicorn's --root-path.
    proxied = create_app(str(store_path), root_path="/ops")
    async with served(proxied) as base, httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        page = await http.get("/")
        assert 'href="/ops/static/app.css"' in page.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "without a token"),
        (["--host", "192.0.2.1", "--port", "80000"], "without a token"),
        (["--port", "70000"], "--port"),
        (["--store-is-a-directory"], "is a directory"),
        (["--port-in-use"], "cannot serve on"),
    ],
)
async def test_the_web_command_refuses_bad_input_in_one_line(
    store_path: Any, tmp_path: Any, args: list[str], message: str
) -> None:
    store = str(tmp_path) if args == ["--store-is-a-directory"] else str(store_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        if args[0].startswith("--store"):
            args = []
        elif args == ["--port-in-use"]:
            args = ["--port", str(taken.getsockname()[1])]
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "aiobgproc", "--store", store, "web", *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    assert result.returncode == 2
    assert result.stdout == ""  # no "serving on" line before the refusal
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


async def test_the_served_dashboard_refuses_a_rebinding_host_and_a_bad_store(
    store_path: Any, tmp_path: Any
) -> None:
    async with Manager(store_path) as manager:
        failed = await manager.start(
            Process({"boom": Step("stepmods.failing:raise_value_error")}), label="x y"
        )
        await manager.wait_for(failed, timeout=WAIT)
        quoted = await manager.start(Command(["echo", "two words"]))
        await manager.wait_for(quoted, timeout=WAIT)
    port = free_port()
    web = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "aiobgproc", "--store", str(store_path), "web"],
        *["--port", str(port)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert web.stdout is not None
        line = await asyncio.wait_for(web.stdout.readline(), WAIT)
        assert f"127.0.0.1:{port}" in line.decode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
            # Without a token, only a loopback Host: a page elsewhere whose name resolves
            # to 127.0.0.1 (DNS rebinding) is not the dashboard's own site.
            evil = await http.get("/api/processes", headers={"host": f"evil.example:{port}"})
            assert evil.status_code == 400
            near = await http.get("/api/processes", headers={"host": f"localhost:{port}"})
            assert near.status_code == 200
            page = await http.get(f"/processes/{failed}")
            assert 'class="step failed"' in page.text  # the step that raised
            assert "ValueError" in page.text
            listing = await http.get("/")
            assert "echo &#x27;two words&#x27;" in listing.text  # quoted as a shell would
    finally:
        web.terminate()
        await asyncio.wait_for(web.communicate(), WAIT)
    # In an app of one's own, a store that cannot be opened says so: 503, no traceback.
    broken = create_app(str(tmp_path))
    async with served(broken) as base, httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        api = await http.get("/api/processes")
        assert api.status_code == 503
        assert "directory" in api.json()["error"]
        page = await http.get("/")
        assert page.status_code == 503
        assert "Traceback" not in page.text
