"""Upload data: request bodies streamed to disk, hashed on the way, in a few-MiB buffers.

Bodies arrive in small chunks. Handling each chunk on the event loop cannot keep up with the
disk, so chunks gather into buffers of `BUFFER_SIZE`, and each full buffer is hashed and written
in a worker thread (hashlib and file writes release the GIL) while the next one fills.

The running sha256 of each upload is kept in memory by the process that received it; an upload
continued by another process (or after a restart) is re-hashed from its data when it completes.

A session has one writer at a time: `hold` locks it across this process, the other workers of
the host and (through the driver) every node sharing the storage, so no request can append to
a session while another appends to it or publishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.oci.digest import Digest
from dockyard.oci.errors import SizeInvalid
from dockyard.storage import paths
from dockyard.storage.driver.base import Appender, Locked, StorageDriver
from dockyard.storage.paths import UploadRef

BUFFER_SIZE = 4 * 1024 * 1024
IDLE_BUFFERS = 8  # kept for the next uploads: 32 MiB, what 4 concurrent big uploads hold
SESSION_WAIT = 5.0  # seconds a request waits for another one writing the same session


class SessionLimit(Exception):
    """Starting a session would pass the open-session limit of a repository or an account."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(f"{limit} upload sessions are open for this {scope}")
        self.scope = scope
        self.limit = limit


class _Buffers:
    """Upload buffers of BUFFER_SIZE, reused: taking one costs no allocation and no page fault.

    Each upload used to grow a bytearray chunk by chunk and shrink it after every write. That
    reallocated all the time, and left a heap fragmented by a few concurrent uploads as big
    after they ended; a fresh mapping per upload costs 1.2 ms of CPU per 1 MiB push in faults.
    At most IDLE_BUFFERS stay when uploads end; more are dropped.
    """

    def __init__(self, limit: int = IDLE_BUFFERS) -> None:
        self.limit = limit
        self._idle: list[bytearray] = []

    def take(self) -> bytearray:
        return self._idle.pop() if self._idle else bytearray(BUFFER_SIZE)

    def give(self, buffer: bytearray) -> None:
        if len(self._idle) < self.limit:
            self._idle.append(buffer)


@dataclass
class _Running:
    hasher: hashlib._Hash
    offset: int


class UploadStore:
    """The bytes of upload sessions, which are the sessions themselves (see `UploadRef`)."""

    def __init__(
        self, driver: StorageDriver, per_repository: int = 0, per_account: int = 0
    ) -> None:
        """`per_repository` and `per_account` cap the sessions open at once (0: no cap)."""
        self.driver = driver
        self.per_repository = per_repository
        self.per_account = per_account
        self._running: dict[UploadRef, _Running] = {}
        self._locks: dict[UploadRef, tuple[asyncio.Lock, int]] = {}
        self._buffers = _Buffers()

    @contextlib.asynccontextmanager
    async def hold(self, upload: UploadRef, wait: float = SESSION_WAIT) -> AsyncIterator[None]:
        """Be the session's only writer while the block runs, across processes and nodes.

        Requests of this process queue in order; the storage driver's lock then excludes every
        other process. Raises `FileNotFoundError` when there is no such session (or it ends
        while we wait) and `Locked` when another request keeps it for more than `wait` seconds.
        """
        lock, users = self._locks.get(upload, (asyncio.Lock(), 0))
        self._locks[upload] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(wait):
                    await lock.acquire()
            except TimeoutError:
                raise Locked(paths.upload_key(upload)) from None
            try:
                async with self.driver.lock(paths.upload_key(upload), wait):
                    yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[upload]
            if users == 1:
                del self._locks[upload]
            else:
                self._locks[upload] = (lock, users - 1)

    async def create(self, upload: UploadRef, owner: str | None = None) -> None:
        """Open a session, counted against its repository's and its `owner` account's caps
        (`SessionLimit` past either; a few racing starts may pass a cap by one each)."""
        if self.per_repository:
            folder = paths.upload_repository_folder(upload.repository_id)
            open_sessions = [key async for key, _ in self.driver.walk(folder)]
            if sum(key.endswith("/data") for key in open_sessions) >= self.per_repository:
                raise SessionLimit("repository", self.per_repository)
        if owner is not None and self.per_account and await self._owned(owner) >= self.per_account:
            raise SessionLimit("account", self.per_account)
        appender = await self.driver.open_append(paths.upload_key(upload))
        await appender.close()
        if owner is not None:
            await self._write(paths.upload_owner_key(upload), owner.encode())
            await self._write(paths.owner_marker_key(owner, upload), b"")
        self._running[upload] = _Running(hashlib.sha256(), 0)

    async def _owned(self, owner: str) -> int:
        """How many sessions `owner` has open; markers of ended sessions are pruned when the
        count reaches the cap (a crash may leave one behind)."""
        markers = [key async for key, _ in self.driver.walk(paths.owner_markers(owner))]
        if len(markers) < self.per_account:
            return len(markers)
        alive = 0
        for key in markers:
            upload = paths.upload_from_marker_key(key)
            if upload is not None and await self.size(upload) is not None:
                alive += 1
            else:
                await self.driver.delete(key)
        return alive

    async def _write(self, key: str, data: bytes) -> None:
        appender = await self.driver.open_append(key)
        try:
            await appender.write(data)
        finally:
            await appender.close()

    async def size(self, upload: UploadRef) -> int | None:
        return await self.driver.size(paths.upload_key(upload))

    async def append(
        self, upload: UploadRef, body: AsyncIterator[bytes], expected_length: int | None = None
    ) -> int:
        """Append a request body to a session that exists; return the upload's new size.

        Raises `FileNotFoundError` when there is no such session, and `SizeInvalid` when the
        body is not `expected_length` bytes long (what was received stays appended: the client
        may ask for the offset and resume).
        """
        appender = await self.driver.open_append(paths.upload_key(upload), create=False)
        running = self._running.get(upload)
        if running is not None and running.offset != appender.size:
            running = None  # another process appended: re-hash when it completes
        try:
            received = await _pump(
                body, appender, running.hasher if running else None, self._buffers
            )
            # no fsync here: placing the finished blob fsyncs it, and a session whose tail was
            # lost in a crash fails its digest check rather than publishing anything
        finally:
            await appender.close()
        if running is not None:
            running.offset += received
        else:
            self._running.pop(upload, None)
        if expected_length is not None and received != expected_length:
            raise SizeInvalid(
                f"request body was {received} bytes but Content-Length said {expected_length}"
            )
        return appender.size

    async def digest(self, upload: UploadRef, algorithm: str, size: int | None = None) -> Digest:
        """The digest of everything uploaded so far (from the running hash when it is current);
        `size` is the upload's, when the caller has just learnt it."""
        running = self._running.get(upload)
        if size is None:
            size = await self.size(upload)
        if algorithm == "sha256" and running is not None and running.offset == size:
            return Digest(algorithm, running.hasher.copy().hexdigest())
        hasher = hashlib.new(algorithm)
        async for chunk in self.driver.read(paths.upload_key(upload)):
            await asyncio.to_thread(hasher.update, chunk)
        return Digest(algorithm, hasher.hexdigest())

    async def discard(self, upload: UploadRef) -> None:
        self.forget(upload)
        try:
            owner = (await self.driver.read_all(paths.upload_owner_key(upload))).decode()
        except FileNotFoundError:
            owner = None
        await self.driver.delete(paths.upload_folder(upload))
        if owner is not None:
            await self.driver.delete(paths.owner_marker_key(owner, upload))

    def forget(self, upload: UploadRef) -> None:
        """Drop the in-memory state of an upload that has completed or been cancelled."""
        self._running.pop(upload, None)

    async def sessions(self) -> AsyncIterator[tuple[UploadRef, float]]:
        """Every upload session on storage and the last time data reached it."""
        async for key, mtime in self.driver.walk(paths.UPLOADS):
            upload = paths.upload_from_key(key)
            if upload is not None:
                yield upload, mtime


async def _pump(
    body: AsyncIterator[bytes],
    appender: Appender,
    hasher: hashlib._Hash | None,
    buffers: _Buffers,
) -> int:
    """Copy `body` to `appender` in BUFFER_SIZE pieces, one in flight while the next fills.

    Two buffers take turns, each filled in place: the only copy is a chunk into its buffer.
    Buffers go back to `buffers` only when all went well.
    """
    received = 0
    filling, spare = buffers.take(), None  # a second only once the first is full
    used = 0
    pending: asyncio.Task[None] | None = None

    async def flush(buffer: bytearray, size: int) -> None:
        await appender.write(memoryview(buffer)[:size], hasher)

    try:
        async for chunk in body:
            received += len(chunk)
            rest = memoryview(chunk)
            while rest:
                take = min(len(rest), BUFFER_SIZE - used)
                filling[used : used + take] = rest[:take]
                used += take
                rest = rest[take:]
                if used == BUFFER_SIZE:
                    if pending is not None:
                        await pending  # `spare` is written: it may fill next
                    pending = asyncio.create_task(flush(filling, used))
                    if spare is None:
                        spare = buffers.take()
                    filling, spare, used = spare, filling, 0
    finally:
        if pending is not None:
            await pending
    if used:
        await flush(filling, used)
    # not on the way out of an error: a cancelled write may still read its buffer in a thread
    buffers.give(filling)
    if spare is not None:
        buffers.give(spare)
    return received
