"""The storage driver contract; every driver runs this same suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.storage.driver.base import StorageDriver
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
