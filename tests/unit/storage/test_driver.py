"""The storage driver contract; every driver runs this same suite."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.storage.driver.base import Locked, StorageDriver
from dockyard.storage.driver.filesystem import FilesystemDriver


@pytest.fixture(params=["filesystem"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    return FilesystemDriver(tmp_path / "root")


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_append_then_read_ranges(driver: StorageDriver) -> None:
    appender = await driver.open_append("a/b/data")
    await appender.write(b"hello ")
    await appender.write(memoryview(b"world"))
    await appender.sync()
    assert appender.size == 11
    await appender.close()
    assert await driver.size("a/b/data") == 11
    assert await _collect(driver.read("a/b/data")) == b"hello world"
    assert await _collect(driver.read("a/b/data", 6)) == b"world"
    assert await _collect(driver.read("a/b/data", 2, 3)) == b"llo"
    assert await driver.read_all("a/b/data") == b"hello world"


async def test_reopened_appender_continues_at_the_end(driver: StorageDriver) -> None:
    first = await driver.open_append("x/data")
    await first.write(b"abc")
    await first.close()
    second = await driver.open_append("x/data")
    assert second.size == 3
    await second.write(b"def")
    await second.close()
    assert await driver.read_all("x/data") == b"abcdef"


async def test_place_keeps_source_and_never_overwrites(driver: StorageDriver) -> None:
    for key, data in (("src/one", b"first"), ("src/two", b"second")):
        appender = await driver.open_append(key)
        await appender.write(data)
        await appender.close()
    assert await driver.place("src/one", "dst/data") is True
    assert await driver.size("src/one") == 5  # the source stays
    assert await driver.place("src/two", "dst/data") is False
    assert await driver.read_all("dst/data") == b"first"


async def test_size_and_delete_of_missing_keys(driver: StorageDriver) -> None:
    assert await driver.size("nothing/here") is None
    assert await driver.delete("nothing/here") is False


async def test_delete_removes_a_folder_of_objects(driver: StorageDriver) -> None:
    for key in ("up/1/data", "up/1/extra"):
        appender = await driver.open_append(key)
        await appender.close()
    assert await driver.delete("up/1") is True
    assert [key async for key, _ in driver.walk("")] == []


async def test_walk_lists_keys_with_mtimes(driver: StorageDriver) -> None:
    for key in ("blobs/a/data", "blobs/b/data", "other/c"):
        appender = await driver.open_append(key)
        await appender.close()
    found = sorted([key async for key, _ in driver.walk("blobs")])
    assert found == ["blobs/a/data", "blobs/b/data"]


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a/../../b"])
async def test_keys_cannot_escape_the_root(driver: StorageDriver, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        await driver.size(key)


async def _write(driver: StorageDriver, key: str, data: bytes) -> None:
    appender = await driver.open_append(key)
    await appender.write(data)
    await appender.close()


async def test_a_lock_has_one_holder_at_a_time(driver: StorageDriver) -> None:
    await _write(driver, "s/data", b"x")
    async with driver.lock("s/data", wait=1):
        with pytest.raises(Locked):
            async with driver.lock("s/data", wait=0.05):
                pytest.fail("a second holder got the lock")
    async with driver.lock("s/data", wait=0):  # released with the block
        pass


async def test_a_waiter_gets_the_lock_when_the_holder_lets_go(driver: StorageDriver) -> None:
    await _write(driver, "s/data", b"x")
    order: list[str] = []

    async def second() -> None:
        async with driver.lock("s/data", wait=5):
            order.append("second")

    async with driver.lock("s/data", wait=1):
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        order.append("first")
    await waiter
    assert order == ["first", "second"]


async def test_locking_a_missing_or_deleted_object_fails(driver: StorageDriver) -> None:
    with pytest.raises(FileNotFoundError):
        async with driver.lock("nothing/data", wait=0):
            pass
    await _write(driver, "s/data", b"x")

    async def late() -> None:
        async with driver.lock("s/data", wait=5):
            pass

    async with driver.lock("s/data", wait=1):
        waiter = asyncio.create_task(late())
        await asyncio.sleep(0.05)
        await driver.delete("s")
    with pytest.raises(FileNotFoundError):
        await waiter


def test_a_lock_excludes_another_process(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "root")
    asyncio.run(_write(driver, "s/data", b"x"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(tmp_path / 'root' / 's' / 'data')!r})\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"

        async def try_lock() -> None:
            async with driver.lock("s/data", wait=0.1):
                pass

        with pytest.raises(Locked):
            asyncio.run(try_lock())
    finally:
        holder.communicate("", timeout=10)
    asyncio.run(try_lock())  # the holder exited, and its lock with it


async def test_move_renames_and_never_replaces(driver: StorageDriver) -> None:
    await _write(driver, "a/data", b"bad")
    await _write(driver, "b/data", b"other")
    assert await driver.move("a/data", "q/one") is True
    assert await driver.size("a/data") is None
    assert await driver.read_all("q/one") == b"bad"
    assert await driver.move("a/data", "q/two") is False
    with pytest.raises(FileExistsError):
        await driver.move("b/data", "q/one")
