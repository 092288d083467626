"""A store is private to its owner: it holds commands' environments and every output log.

A store file we create is 0600 (its -wal and -shm files follow it), directories we create
for it are 0700, and an existing file keeps its mode; checked under a permissive umask,
in this process and from a fresh interpreter (as a new user's first command would)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiobgproc import Command, Manager


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_store_and_its_wal_and_shm_are_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    db = tmp_path / "store.db"
    async with Manager(db) as manager:
        process_id = await manager.start(Command(["echo", "secret"], env={"API_TOKEN": "t0k3n"}))
        await manager.wait_for(process_id, timeout=30)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.exists(), path
            assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"


async def test_directories_created_for_a_store_are_0700(
    tmp_path: Path, permissive_umask: None
) -> None:
    db = tmp_path / "a" / "b" / "store.db"
    async with Manager(db, run=False) as manager:
        await manager.list()
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700
    assert mode(db) == 0o600


async def test_an_existing_store_keeps_its_mode(tmp_path: Path, permissive_umask: None) -> None:
    db = tmp_path / "shared.db"
    async with Manager(db, run=False):
        pass
    os.chmod(db, 0o640)  # the owner chose to share it with a group
    async with Manager(db) as manager:
        process_id = await manager.start(Command(["true"]))
        await manager.wait_for(process_id, timeout=30)
        assert mode(Path(f"{db}-wal")) == 0o640  # SQLite gives it the file's mode
    assert mode(db) == 0o640


async def test_an_existing_empty_file_keeps_its_mode(
    tmp_path: Path, permissive_umask: None
) -> None:
    db = tmp_path / "empty.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    async with Manager(db, run=False) as manager:
        await manager.list()
    assert mode(db) == 0o644


def test_the_default_store_of_a_fresh_interpreter_is_private(tmp_path: Path) -> None:
    # A new user's first command under umask 000: the default store in XDG_DATA_HOME.
    data_home = tmp_path / "data"
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    env.pop("AIOBGPROC_STORE", None)
    code = (
        "import asyncio, os\n"
        "os.umask(0)\n"
        "from aiobgproc import Manager\n"
        "async def main():\n"
        "    async with Manager(run=False) as m:\n"
        "        await m.list()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    store_dir = data_home / "aiobgproc"
    assert mode(store_dir) == 0o700
    assert mode(store_dir / "aiobgproc.db") == 0o600
