"""No input reaches a traceback: property-based tests (hypothesis) of every way in.

Whatever ``start``, ``proceed``, ``Manager(...)``, the CLI's flags and spec files, or a
damaged or foreign store file are given, the caller gets an ``AiobgprocError`` subclass (the
CLI: one line on stderr, a non-zero exit) and a refused call leaves the store's bytes as
they were. Generated runs are bounded (``max_examples``) to fit CI; every crash they found
is kept below as an explicit example (``@example``) or a regression test.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiobgproc import (
    AiobgprocError,
    Command,
    InvalidSpecError,
    Manager,
    Process,
    Status,
    Step,
    StoreError,
)
from aiobgproc.cli import main as cli_main
from helpers.loops import runner

DRIVES_THE_TEST_LOOP = True  # its sync tests run coroutines on helpers.loops.runner()
FUZZ = settings(
    max_examples=100,
    # On CI, the same examples every run (a new finding must not turn an unrelated change
    # red); on a developer's machine, new ones each time.
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=20)

# -- strategies ----------------------------------------------------------------------------------

# Text of every kind: any code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
huge_ints = st.integers(min_value=-(2**200), max_value=2**200)
any_float = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), huge_ints, any_float, any_text, st.binary(max_size=8))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(any_text, inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.floats()), inner, max_size=2),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)
junk = st.one_of(json_like, st.builds(object), st.just(print), st.just(Path("/tmp")))


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


EDGE_DATA: dict[str, Any] = {
    "nan": {"nan": math.nan},
    "inf": {"inf": math.inf},
    "big-int": {"big": 2**100},
    "surrogate-value": {"surrogate": "\ud800"},
    "surrogate-key": {"\udcff": 1},
    "nul": {"nul": "a\x00b"},
    "int-key": {1: "int key"},
    "bytes": {"bytes": b"x"},
    "set": {"set": {1, 2}},
    "not-a-dict": [1, 2],
    "deep": nested(100_000),
    "8-MiB-string": {"huge": "x" * (8 << 20)},
}
SMALL_EDGE_DATA = [
    value for name, value in EDGE_DATA.items() if name not in ("deep", "8-MiB-string")
]


# -- a client on a store, and the store's bytes -------------------------------------------------


def fingerprint(db: Path) -> str:
    """Digests of the store file and its WAL (what a refused call must not change), taken by
    another process: opening and closing the file here would drop the POSIX locks of this
    process's own SQLite connections on it (see docs/design.md)."""
    paths = [str(path) for path in (db, Path(f"{db}-wal")) if path.exists()]
    if not paths:
        return ""
    done = subprocess.run(["sha256sum", *paths], capture_output=True, check=True, timeout=30)
    return done.stdout.decode()


class Client:
    """A Manager(run=False) on a fresh store, driven from sync hypothesis tests."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = runner()
        # A long lease: no heartbeat write changes the file while examples run.
        self.manager = Manager(db, run=False, lease=3600)
        self.run(self.manager.open())

    def run(self, coroutine: Any) -> Any:
        return self.runner.run(coroutine)

    def close(self) -> None:
        try:
            self.run(self.manager.close())
        finally:
            self.runner.close()

    def refused_or_accepted(self, coroutine: Any) -> Any:
        """Run a call that must succeed or raise an AiobgprocError; a refused one must leave
        the store's bytes as they were. Returns the result, or the error."""
        before = fingerprint(self.db)
        try:
            return self.run(coroutine)
        except AiobgprocError as exc:
            error = exc
        assert fingerprint(self.db) == before, f"refused ({error}) but the store changed"
        return error


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    opened = Client(tmp_path / "fuzz.db")
    try:
        yield opened
    finally:
        opened.close()


# -- start ----------------------------------------------------------------------------------------


@FUZZ
@given(argv=st.one_of(junk, st.lists(st.one_of(any_text, junk), max_size=4)), shell=junk)
@example(argv=["echo", "\ud800"], shell=False)
@example(argv=("echo", "tuple"), shell=False)
@example(argv=["\udcff"], shell=False)
@example(argv="echo hi", shell=1)
def test_start_a_command_with_any_argv(client: Client, argv: Any, shell: Any) -> None:
    result = client.refused_or_accepted(client.manager.start(Command(argv, shell=shell)))
    if isinstance(result, str):
        assert client.run(client.manager.info(result)).status is Status.QUEUED


@FUZZ
@given(cwd=junk, env=st.one_of(junk, st.dictionaries(any_text, any_text, max_size=3)))
@example(cwd="/tmp/\ud800", env=None)
@example(cwd=None, env={"A\ud800": "1"})
@example(cwd=None, env={"A": "\udcff"})
def test_start_a_command_with_any_cwd_and_env(client: Client, cwd: Any, env: Any) -> None:
    client.refused_or_accepted(client.manager.start(Command(["true"], cwd=cwd, env=env)))


targets = st.one_of(
    junk,
    any_text,
    st.sampled_from(
        [
            "stepmods.basic:echo",
            "stepmods.basic:missing",
            "stepmods.basic:",
            ":echo",
            "stepmods..basic:echo",
            "zz_no_such_module:fn",
            "stepmods.basic:echo.attr",
            "stepmods.basic:GATE_TIMEOUT",
            " stepmods.basic:echo ",
            "os:sep",
        ]
    ),
)


@FUZZ
@given(target=targets, args=st.lists(junk, max_size=2), timeout=st.one_of(junk, any_float))
@example(target="stepmods.basic:echo", args=[math.nan], timeout=None)
def test_start_a_process_with_any_step(
    client: Client, target: Any, args: list[Any], timeout: Any
) -> None:
    work = client.refused_or_accepted(_process(target, args, timeout))
    if isinstance(work, Process):
        client.refused_or_accepted(client.manager.start(work))


async def _process(target: Any, args: list[Any], timeout: Any) -> Process:
    # Building a Process or Step must itself fail with our error type, or not at all.
    try:
        return Process([Step(target, *args)], timeout=timeout)
    except AiobgprocError:
        raise
    except Exception as exc:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"Process/Step raised {type(exc).__name__}: {exc}") from exc


@FUZZ
@given(steps=junk)
@example(steps={})
@example(steps=[])
@example(steps={"a": "not a step"})
@example(steps={1: Step("stepmods.basic:echo")})
def test_start_a_process_with_any_steps(client: Client, steps: Any) -> None:
    async def build_and_start() -> str:
        return await client.manager.start(Process(steps))

    result = client.refused_or_accepted(build_and_start())
    assert isinstance(result, str | AiobgprocError)


@FUZZ
@given(data=json_like, timeout=st.one_of(junk, any_float))
def test_start_with_any_data_and_timeout(client: Client, data: Any, timeout: Any) -> None:
    work = Process([Step("stepmods.basic:echo")])
    client.refused_or_accepted(client.manager.start(work, data, timeout=timeout))


@pytest.mark.parametrize("name", EDGE_DATA)
def test_start_with_edge_data(client: Client, name: str) -> None:
    data = EDGE_DATA[name]
    work = Process([Step("stepmods.basic:echo")])
    result = client.refused_or_accepted(client.manager.start(work, data))
    if isinstance(result, str):
        stored = client.run(client.manager.info(result))
        assert stored.status is Status.QUEUED
    # The same values as a step's arguments.
    client.refused_or_accepted(_start_step_with(client, data))


async def _start_step_with(client: Client, value: Any) -> str:
    return await client.manager.start(Process([Step("stepmods.basic:echo", value)]))


# -- what is accepted also runs ------------------------------------------------------------------


@FEW
@given(args=st.lists(any_text.filter(lambda text: "\x00" not in text), max_size=3))
@example(args=["\ud800"])
@example(args=["\udcff"])
def test_an_accepted_command_runs_to_an_end(tmp_path: Path, args: list[str]) -> None:
    """Anything start() accepts runs and ends with a status; nothing crashes the manager."""

    async def scenario() -> None:
        async with Manager(tmp_path / "run.db", concurrency=2) as manager:
            try:
                process_id = await manager.start(Command(["echo", *args]))
            except InvalidSpecError:
                return
            info = await manager.wait_for(process_id, timeout=30)
            assert info.status in (Status.FINISHED, Status.ERROR), info
            if info.status is Status.ERROR:
                assert info.error is not None

    with runner() as loop:
        loop.run(scenario())


# -- proceed --------------------------------------------------------------------------------------


@FEW
@given(data=st.one_of(json_like, st.sampled_from(SMALL_EDGE_DATA)))
@example(data={"nan": math.nan})
@example(data=[1, 2])
def test_proceed_with_any_data(tmp_path: Path, data: Any) -> None:
    """A refused proceed leaves the process paused; an accepted one merges the data."""

    async def scenario() -> None:
        async with Manager(tmp_path / "proceed.db", concurrency=2) as manager:
            work = Process(
                [Step("stepmods.basic:echo", interrupt=True), Step("stepmods.basic:echo")]
            )
            process_id = await manager.start(work, {"seed": 1})
            paused = await manager.wait_for(process_id, timeout=30)
            assert paused.status is Status.INTERRUPTED, paused.error
            try:
                await manager.proceed(process_id, data)
            except AiobgprocError:
                assert (await manager.info(process_id)).status is Status.INTERRUPTED
                await manager.cancel(process_id)
                return
            done = await manager.wait_for(process_id, timeout=30)
            assert done.status is Status.FINISHED, done.error
            assert done.output is not None
            assert done.output["seed"] == 1

    with runner() as loop:
        loop.run(scenario())


@FUZZ
@given(process_id=junk)
def test_info_cancel_and_proceed_with_any_id(client: Client, process_id: Any) -> None:
    for call in (client.manager.info, client.manager.cancel, client.manager.proceed):
        result = client.refused_or_accepted(call(process_id))
        assert isinstance(result, AiobgprocError), result


# -- Manager options ------------------------------------------------------------------------------

OPTIONS = [
    "run",
    "concurrency",
    "error_log",
    "max_output_bytes",
    "grace_period",
    "poll_interval",
    "python",
    "lease",
    "max_attempts",
    "max_jobs",
    "warm",
    "preload",
]


@FUZZ
@given(options=st.dictionaries(st.sampled_from(OPTIONS), junk, max_size=3), store=junk)
@example(options={"concurrency": 2**70}, store=None)
@example(options={"lease": math.inf}, store=None)
@example(options={"preload": "stepmods.basic"}, store=None)
@example(options={"preload": ["zz_no_such_module"]}, store=None)
@example(options={}, store="sqlite://host/x.db")
@example(options={}, store="ftp://x")
@example(options={}, store=b"bytes.db")
@example(options={}, store="nul\x00.db")
@example(options={}, store="surrogate\ud800.db")
@example(options={"grace_period": 2**1024}, store=None)
@example(options={"python": "/nonexistent/python"}, store=None)
@example(options={"python": "\ud800"}, store=None)
@example(options={"error_log": object()}, store=None)
@example(options={"preload": object()}, store=None)
@example(options={"run": "yes"}, store=None)
@example(options={"python": ""}, store=None)
def test_manager_with_any_options(tmp_path: Path, options: dict[str, Any], store: Any) -> None:
    # Paths are kept in tmp_path (NUL bytes, surrogates and all); URLs are left as they are.
    if store is None:
        store = tmp_path / "options.db"
    elif isinstance(store, str) and not store.startswith(("sqlite:", "ftp:")):
        store = str(tmp_path / ("s-" + store.replace("/", "_")))
    elif isinstance(store, bytes):
        store = bytes(tmp_path / "b-") + store.replace(b"/", b"_")

    async def scenario() -> None:
        try:
            manager = Manager(store, **{"run": False, **options})
            await manager.open()
        except AiobgprocError:
            return
        await manager.close()

    with runner() as loop:
        loop.run(scenario())


# -- the CLI --------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli_main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str) -> None:
    """A failure is one line on stderr, ours ("aiobgproc: ..." or, for a usage error,
    "aiobgproc COMMAND: ..."), never a traceback nor an unexpected error."""
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("aiobgproc"), err
        assert "unexpected" not in lines[0], err


cli_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)


@FUZZ
@given(
    command=st.sampled_from(["info", "wait", "proceed", "cancel", "logs"]),
    extra=st.lists(st.one_of(cli_text, st.sampled_from(["--json", "--data", "--timeout"]))),
)
@example(command="info", extra=["", "\r0"])
@example(command="info", extra=["\x1b[31mred"])
@example(command="proceed", extra=["x", "--data", "[1]"])
@example(command="proceed", extra=["x", "--data", "NaN"])
@example(command="wait", extra=["x", "--timeout", "nan"])
@example(command="wait", extra=["x", "--timeout", "-1"])
def test_cli_commands_with_any_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, extra: list[str]
) -> None:
    db = tmp_path / "cli.db"
    code, err = run_cli([command, *extra, "--store", str(db)], capsys)
    assert code != 0  # no process exists in this store: every one of these fails
    assert_one_line_error(code, err)


@FUZZ
@given(status=cli_text, limit=st.one_of(cli_text, st.integers().map(str)), age=st.one_of(cli_text))
@example(status="queued", limit="-5", age="7d")
@example(status="queued", limit="0", age="-1h")
@example(status="queued", limit="99999999999999999999", age="1e400d")
def test_cli_list_and_prune_with_any_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str, limit: str, age: str
) -> None:
    db = str(tmp_path / "cli.db")
    assert_one_line_error(*run_cli(["list", "--status", status, "--store", db], capsys))
    assert_one_line_error(*run_cli(["list", "--limit", limit, "--store", db], capsys))
    assert_one_line_error(*run_cli(["prune", age, "--store", db], capsys))


@FUZZ
@given(spec=st.one_of(json_like.map(lambda value: json.dumps(value, default=repr)), cli_text))
@example(spec='{"steps": {"a": {"target": "stepmods.basic:echo", "args": 1}}}')
@example(spec='{"steps": {"a": {"target": "stepmods.basic:echo", "kwargs": {"1": 2}}}}')
@example(spec='{"steps": {"a": {"target": 5}}}')
@example(spec='{"steps": [], "timeout": "x"}')
@example(spec='{"steps": ["stepmods.basic:echo"], "env": {"A": 1}}')
@example(spec='{"steps": ["stepmods.basic:echo"], "cwd": 3}')
@example(spec='{"steps": ["zz_no_module:x"]}')
@example(spec='{"steps": ["stepmods.basic:echo"], "timeout": 1e400}')
def test_cli_start_with_any_spec_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    """Only refused specs reach the store here (a valid one would start a burst worker): a
    spec that start() accepts is left out by refusing it with bad --data."""
    path = tmp_path / "spec.json"
    path.write_text(spec, encoding="utf-8", errors="surrogatepass")
    db = tmp_path / "cli.db"
    code, err = run_cli(["start", str(path), "--data", "[]", "--store", str(db)], capsys)
    assert code != 0
    assert_one_line_error(code, err)


@FUZZ
@given(
    option=st.sampled_from(["--timeout", "--cwd", "--env"]),
    value=cli_text,
    argv=st.lists(cli_text, max_size=2),
)
@example(option="--timeout", value="nan", argv=["true"])
@example(option="--env", value="=x", argv=["true"])
@example(option="--cwd", value="/no/such/dir", argv=["true"])
def test_cli_run_with_any_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, argv: list[str]
) -> None:
    """Only what is refused is looked at here; an accepted command is cancelled at once."""
    db = tmp_path / "cli.db"
    code, err = run_cli(["run", "--store", str(db), option, value, "--", *argv], capsys)
    if code == 0:
        return  # accepted: a burst worker runs it (the leak check waits for it to exit)
    assert_one_line_error(code, err)


# -- damaged and foreign stores -------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store with a few processes in it, closed (no -wal left)."""
    db = tmp_path_factory.mktemp("good") / "good.db"

    async def fill() -> None:
        async with Manager(db, concurrency=2) as manager:
            ids = [await manager.start(Command(["echo", str(n)])) for n in range(5)]
            for process_id in ids:
                await manager.wait_for(process_id, timeout=30)

    with runner() as loop:
        loop.run(fill())
    return db


def open_and_use(db: Path) -> None:
    """Open a manager on ``db`` and use it: it must work or raise StoreError, and an open
    that is refused must leave the file's bytes as they were."""
    before = db.read_bytes() if db.exists() else None

    async def use() -> bool:
        manager = Manager(db, run=False)
        try:
            await manager.open()
        except StoreError:
            return False
        try:
            await manager.list(limit=1000)
            for info in await manager.list(limit=10):
                await manager.output(info.id)
        except AiobgprocError:
            pass  # e.g. StoreError, or ProcessNotFoundError for an id whose bytes were hit
        finally:
            await manager.close()
        return True

    with runner() as loop:
        if not loop.run(use()):
            assert (db.read_bytes() if db.exists() else None) == before, "refused, yet changed"


@FUZZ
@given(cut=st.integers(min_value=0, max_value=64 * 1024))
def test_a_truncated_store(good_store: Path, tmp_path: Path, cut: int) -> None:
    db = tmp_path / f"cut-{cut}.db"
    data = good_store.read_bytes()
    db.write_bytes(data[: min(cut, len(data))])
    open_and_use(db)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=64 * 1024), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
)
@example(flips=[(3200, 128)])  # text that is not UTF-8 in the schema: UnicodeDecodeError
@example(flips=[(65504, 0)])  # a damaged id: ProcessNotFoundError for it
@example(flips=[(60, 128)])  # the header's user_version made negative: IndexError
def test_a_store_with_damaged_bytes(
    good_store: Path, tmp_path: Path, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(good_store.read_bytes())
    for offset, value in flips:
        data[offset % len(data)] = value
    db = tmp_path / "damaged.db"
    db.write_bytes(bytes(data))
    open_and_use(db)


@FUZZ
@given(content=st.binary(min_size=1, max_size=4096))
@example(content=b"\x00")  # SQLite took a 1-byte file for an empty one and overwrote it
@example(content=b"SQLite format 3\x00")
@example(content=b"SQLite format 3\x00" + b"\xff" * 100)
def test_a_file_of_random_bytes_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "random.db"
    db.write_bytes(content)
    open_and_use(db)
    assert db.read_bytes() == content
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "foreign.db"
    with contextlib.closing(sqlite3.connect(db)) as other:
        other.execute("CREATE TABLE notes (body TEXT)")
        other.execute("INSERT INTO notes VALUES ('mine')")
        other.commit()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="not an aiobgproc store"), runner() as loop:
        loop.run(Manager(db, run=False).open())
    assert db.read_bytes() == before


def test_a_store_from_a_future_version_is_refused_and_left_alone(
    good_store: Path, tmp_path: Path
) -> None:
    db = tmp_path / "future.db"
    shutil.copy(good_store, db)
    with contextlib.closing(sqlite3.connect(db)) as other:
        other.execute("PRAGMA user_version = 99")
        other.commit()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="newer"), runner() as loop:
        loop.run(Manager(db, run=False).open())
    assert db.read_bytes() == before


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` cannot be written, even by root (who ignores modes: then chattr +i)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a file read-only for root")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_store_file_gives_a_store_error(good_store: Path, tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    shutil.copy(good_store, db)
    before = db.read_bytes()
    with read_only(db):
        open_and_use(db)

        async def write() -> None:
            async with Manager(db, run=False) as manager:
                await manager.start(Command(["true"]))

        with pytest.raises(StoreError), runner() as loop:
            loop.run(write())
    assert db.read_bytes() == before


def test_a_read_only_directory_gives_a_store_error(good_store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(good_store, folder / "store.db")
    with read_only(folder):
        for db in (folder / "store.db", folder / "new.db"):

            async def write(db: Path = db) -> None:
                async with Manager(db, run=False) as manager:
                    await manager.start(Command(["true"]))

            with pytest.raises(StoreError), runner() as loop:
                loop.run(write())
    assert not (folder / "new.db").exists()


def test_a_call_on_a_closed_manager_raises_our_error(tmp_path: Path) -> None:
    manager = Manager(tmp_path / "closed.db", run=False)
    with runner() as loop:
        for call in (manager.list(), manager.info("x"), manager.start(Command(["true"]))):
            with pytest.raises(AiobgprocError):
                loop.run(call)


@pytest.mark.parametrize("age", [math.nan, -1, "7d", None])
def test_prune_refuses_an_age_that_is_no_number_of_seconds(client: Client, age: Any) -> None:
    # NaN compares past every time on PostgreSQL: it would have pruned every process.
    result = client.refused_or_accepted(client.manager.prune(age))
    assert isinstance(result, InvalidSpecError), result


@pytest.mark.parametrize("age", [math.inf, 2**1024])
def test_prune_older_than_forever_prunes_nothing(client: Client, age: Any) -> None:
    assert client.refused_or_accepted(client.manager.prune(age)) == 0


def test_a_client_may_name_an_interpreter_it_never_runs(tmp_path: Path) -> None:
    """python= is checked as a program only by a manager that runs processes."""
    Manager(tmp_path / "client.db", run=False, python="no-such-python")
    with pytest.raises(InvalidSpecError, match="not an executable"):
        Manager(tmp_path / "runner.db", python="no-such-python")


def test_a_managers_options_are_read_only(tmp_path: Path) -> None:
    # The scheduler reads them: a value changed later would take effect in some places only.
    manager = Manager(tmp_path / "options.db", run=False, concurrency=2)
    assert manager.concurrency == 2
    with pytest.raises(AttributeError):
        manager.concurrency = 1  # type: ignore[misc]
