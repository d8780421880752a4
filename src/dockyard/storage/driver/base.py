"""The storage driver protocol: keyed byte objects, streamed, placed durably."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Locked(Exception):
    """Another holder kept an object's lock for longer than the caller would wait."""


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


class Appender(Protocol):
    """An open object that grows at its end; `write` runs off the event loop."""

    @property
    def size(self) -> int: ...

    async def write(
        self, data: bytes | bytearray | memoryview, hasher: Hasher | None = None
    ) -> None:
        """Append `data`, first feeding it to `hasher` (in the same worker thread)."""

    async def sync(self) -> None:
        """Make every byte written so far durable."""

    async def close(self) -> None: ...


class StorageDriver(Protocol):
    """Keyed objects. Keys are `/`-separated relative paths chosen by `storage.paths`."""

    async def size(self, key: str) -> int | None:
        """The object's size, None when it does not exist."""

    def local_path(self, key: str) -> str | None:
        """A path the server can send straight from the kernel, if the driver has one."""

    def read(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream `length` bytes (to the end when None) from `offset`."""

    async def read_all(self, key: str) -> bytes:
        """A small object's bytes (never used for layers)."""

    async def open_append(self, key: str, create: bool = True) -> Appender:
        """Open `key` for appending, creating it empty if missing (else `FileNotFoundError`)."""

    def lock(self, key: str, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold `key` exclusively against every process and node that shares this storage.

        Waits up to `wait` seconds for another holder, then raises `Locked`; raises
        `FileNotFoundError` when `key` does not exist (or is deleted while waiting).
        """

    async def move(self, src: str, dst: str) -> bool:
        """Move an object to another key (replacing nothing); False when `src` is gone."""

    async def place(self, src: str, dst: str) -> bool:
        """Durably give `dst` the bytes of `src`, which stays; False when `dst` already exists."""

    async def delete(self, key: str) -> bool:
        """Remove an object or a folder of objects; False when nothing was there."""

    def walk(self, prefix: str) -> AsyncIterator[tuple[str, float]]:
        """Keys under `prefix` with their modification time (seconds since the epoch)."""
