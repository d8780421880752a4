"""The filesystem driver: objects are files under a root folder."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

from dockyard.storage.driver.base import Hasher, Locked

READ_CHUNK = 1024 * 1024


class FileAppender:
    """Appends to a file; every write and fsync runs in a worker thread."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    async def write(
        self, data: bytes | bytearray | memoryview, hasher: Hasher | None = None
    ) -> None:
        await asyncio.to_thread(self._write_all, data, hasher)
        self._size += len(data)

    def _write_all(self, data: bytes | bytearray | memoryview, hasher: Hasher | None) -> None:
        if hasher is not None:
            hasher.update(data)  # releases the GIL, as the writes do
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def sync(self) -> None:
        await asyncio.to_thread(os.fsync, self._fd)

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FilesystemDriver:
    """Keys map to files under `root`; placing is fsync + hard link + fsync of the folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self._path(key))).st_size
        except FileNotFoundError:
            return None

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        with await asyncio.to_thread(open, path, "rb") as handle:
            await asyncio.to_thread(handle.seek, offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def read_all(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def open_append(self, key: str, create: bool = True) -> FileAppender:
        path = self._path(key)

        def _open() -> FileAppender:
            if not create:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                return FileAppender(fd, os.fstat(fd).st_size)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            return FileAppender(fd, os.fstat(fd).st_size)

        return await asyncio.to_thread(_open)

    @contextlib.asynccontextmanager
    async def lock(self, key: str, wait: float) -> AsyncIterator[None]:
        """An exclusive `flock` on the file itself, held while the block runs.

        flock belongs to the open file, so it excludes other processes and other opens in this
        one alike; it goes with the descriptor, so a killed holder never leaves it behind.
        """
        path = self._path(key)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            deadline = time.monotonic() + wait
            delay = 0.002
            while not _try_flock(fd):
                if time.monotonic() >= deadline:
                    raise Locked(key)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
            # deleted (or replaced) while we waited: what we hold is no longer `key`
            if not os.path.samestat(os.fstat(fd), os.stat(path)):
                raise FileNotFoundError(path)
            yield
        finally:
            os.close(fd)

    async def move(self, src: str, dst: str) -> bool:
        return await asyncio.to_thread(self._move, self._path(src), self._path(dst))

    @staticmethod
    def _move(src: Path, dst: Path) -> bool:
        if dst.exists():
            raise FileExistsError(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            return False
        _fsync_dir(dst.parent)
        _fsync_dir(src.parent)
        return True

    async def place(self, src: str, dst: str) -> bool:
        return await asyncio.to_thread(self._place, self._path(src), self._path(dst))

    @staticmethod
    def _place(src: Path, dst: Path) -> bool:
        if dst.exists():
            return False
        fd = os.open(src, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            # a hard link publishes the complete file atomically and keeps the upload's copy
            os.link(src, dst)
        except FileExistsError:
            return False
        _fsync_dir(dst.parent)
        return True

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._delete, self._path(key))

    @staticmethod
    def _delete(path: Path) -> bool:
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            return False
        return True

    async def walk(self, prefix: str) -> AsyncIterator[tuple[str, float]]:
        base = self._path(prefix) if prefix else self.root
        entries = await asyncio.to_thread(self._walk, base)
        for entry in entries:
            yield entry

    def _walk(self, base: Path) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = Path(dirpath) / name
                try:
                    mtime = full.stat().st_mtime
                except FileNotFoundError:
                    continue
                found.append((full.relative_to(self.root).as_posix(), mtime))
        return found


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
