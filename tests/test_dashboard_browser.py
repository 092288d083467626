"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver,
which .ci/run installs) driven by selenium, against `aiobgproc web` (uvicorn) on loopback,
with an `aiobgproc worker` running the processes.

With AIOBGPROC_SCREENSHOTS=DIR the tests save the screenshots docs/web.md shows there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiobgproc import Command, Manager, Process, Status, Step
from helpers.served import free_port

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no browser here: Debian's chromium and chromium-driver are not installed"
    " (.ci/run installs them: apt-get install chromium chromium-driver)",
)
TESTS = Path(__file__).resolve().parent
WAIT = 30.0
EVIL = '<img src=x onerror="document.title=1">&<b>bold</b>'


def _until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _cli(store: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aiobgproc", "--store", str(store), *args],
        cwd=TESTS,  # the worker imports stepmods from here
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A store, a worker on it, and `aiobgproc web` serving it: (store, base URL)."""
    store = tmp_path / "dashboard.db"
    port = free_port()
    worker = _cli(store, "worker", "--concurrency", "4")
    web = _cli(store, "web", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _answers(f"{base}/api/processes"), "the dashboard to answer")
        yield store, base
    finally:
        for child in (web, worker):
            child.terminate()
        for child in (web, worker):
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            assert child.stderr is not None
            child.stderr.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,860",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _start(store: Path, work: Command | Process, data: Any = None, **options: Any) -> str:
    async def start() -> str:
        async with Manager(store, run=False) as client:
            return await client.start(work, data, **options)

    return asyncio.run(start())


def _call(store: Path, method: str, *args: Any) -> Any:
    async def call() -> Any:
        async with Manager(store, run=False) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(call())


def _status(store: Path, process_id: str) -> Status:
    return Status(_call(store, "info", process_id).status)


def _wait_status(store: Path, process_id: str, status: Status) -> None:
    _until(lambda: _status(store, process_id) is status, f"{process_id} to be {status}")


def _screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("AIOBGPROC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_live_list_live_log_escaping_and_cancel(dashboard: tuple[Path, str], browser: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    store, base = dashboard
    _start(store, Command(["sh", "-c", "echo done"]), label="nightly report", queue="reports")
    browser.get(base + "/")
    browser.execute_script("window.notReloaded = true;")
    script = "for i in $(seq 1 400); do echo line $i; echo warn $i >&2; sleep 0.05; done"
    process_id = _start(store, Command(["sh", "-c", script]), label=EVIL, meta={"x": EVIL})
    # It appears without a reload, its label as text: no element, no script from it.
    selector = f'a[href="/processes/{process_id}"]'

    def row_text() -> str:
        # The rows are re-rendered on every event: look the row up afresh each time.
        for link in browser.find_elements(By.CSS_SELECTOR, selector):
            with contextlib.suppress(StaleElementReferenceException):
                return str(link.find_element(By.XPATH, "./ancestor::tr").text)
        return ""

    _until(row_text, "the new process in the list")
    assert browser.execute_script("return window.notReloaded === true")
    assert EVIL in row_text()
    assert browser.find_elements(By.CSS_SELECTOR, "#processes img, #processes b") == []
    assert browser.title != "1"
    _until(lambda: "running" in row_text(), "its status to turn running")
    _screenshot(browser, "dashboard-list.png")

    browser.get(f"{base}/processes/{process_id}")
    _until(lambda: "line 5" in browser.find_element(By.ID, "log").text, "the log")
    browser.execute_script("window.notReloaded = true;")
    _until(lambda: "line 30" in browser.find_element(By.ID, "log").text, "the log to grow")
    assert browser.execute_script("return window.notReloaded === true")
    assert browser.find_elements(By.CSS_SELECTOR, "#log .stderr")  # told apart
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main b") == []
    _screenshot(browser, "dashboard-process.png")

    # Phone-sized: nothing wider than the screen but the tables' own scrolling.
    browser.set_window_size(390, 844)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    browser.set_window_size(1280, 860)

    browser.find_element(By.XPATH, "//button[text()='Cancel']").click()
    _until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#status .status-cancelled"),
        "the page to show it cancelled",
    )
    assert _call(store, "info", process_id).status is Status.CANCELLED


def test_a_paused_process_is_proceeded_through_the_form(
    dashboard: tuple[Path, str], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    store, base = dashboard
    review = Process(
        {"review": Step("stepmods.pausing:Review"), "last": Step("stepmods.basic:echo")}
    )
    first = _start(store, review, {"title": "draft"})
    second = _start(store, review, {"title": "other"})
    for process_id in (first, second):
        _wait_status(store, process_id, Status.INTERRUPTED)

    browser.get(f"{base}/processes/{first}")
    field = browser.find_element(By.ID, "proceed-data")
    assert json.loads(field.get_attribute("value"))["title"] == "draft"  # pre-filled
    field.clear()
    field.send_keys("{not json")
    browser.find_element(By.XPATH, "//button[text()='Proceed']").click()
    error = browser.find_element(By.ID, "proceed-error")
    assert error.is_displayed()
    assert "JSON" in error.text
    assert _call(store, "info", first).status is Status.INTERRUPTED  # nothing was sent
    field.clear()
    field.send_keys('{"title": "final", "approved": true}')
    browser.find_element(By.XPATH, "//button[text()='Proceed']").click()
    _until(lambda: _call(store, "info", first).status is Status.FINISHED, "the process to finish")
    output = _call(store, "info", first).output
    assert output["title"] == "final"
    assert output["approved"] is True
    assert output["note"] == "please review"  # the paused output, merged

    # The server's refusal is shown in the page: proceeded elsewhere meanwhile (the page
    # says so, but keeps the form: what a person typed is not thrown away by a reload).
    browser.get(f"{base}/processes/{second}")
    _call(store, "proceed", second, {})
    _until(lambda: browser.find_element(By.ID, "changed").is_displayed(), "the notice")
    browser.find_element(By.XPATH, "//button[text()='Proceed']").click()
    flash = _until(lambda: browser.find_elements(By.ID, "flash"), "the server's error")
    assert "Could not proceed" in flash[0].text
