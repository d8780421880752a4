"""Token buckets shared by the processes of one host: a small hash table in an mmap'd file.

`dockyard serve` runs one worker process per core, and a limit kept in each process's memory
is really the limit times the workers. Every worker maps the same file (in the data folder's
`run/`, beside the cache stamps of `generation.py`), so a client's bucket is one bucket
whichever worker answers. An update holds an exclusive `flock` on the file for a few
microseconds; the kernel drops the lock of a process that dies, so a crash cannot wedge it.

The file is a table of `(key hash, stamp, value)` slots. A key is hashed with a secret salt
kept in the file (a client cannot choose names that collide with another's), and lives in one
of `PROBE` slots after its hash. When all of them hold other keys, the slot touched longest
ago is reused: eviction by age, never clearing the table. For a token bucket the oldest slot
is one that has refilled longest ago, so forgetting it changes nothing once it is full.

Nodes on other hosts keep tables of their own; behind a load balancer a limit holds per node.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROBE = 8
_MAGIC = b"DKYBKT1\0"
_HEADER = struct.Struct("=8sI4x16s")  # magic, slots, salt
_SLOT = struct.Struct("=Qdd")  # key hash (0: empty), stamp (epoch seconds), value


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket's shape: `capacity` tokens at most, refilled at `per_second`."""

    capacity: float
    per_second: float

    @classmethod
    def per_window(cls, count: int, seconds: float) -> Limit:
        """`count` at once, and `count` more every `seconds`."""
        return cls(float(count), count / seconds)

    def level(self, entry: tuple[float, float] | None, now: float) -> float:
        """The tokens in a bucket last written as `entry` (stamp, tokens); full when absent."""
        if entry is None:
            return self.capacity
        stamp, tokens = entry
        return min(self.capacity, tokens + max(0.0, now - stamp) * self.per_second)

    def wait(self, tokens: float) -> int:
        """Whole seconds (at least 1) until a bucket holding `tokens` holds one again."""
        return max(1, math.ceil((1.0 - tokens) / self.per_second))


class Slots:
    """The table while its lock is held: read and write entries by key."""

    def __init__(self, table: mmap.mmap, slots: int, salt: bytes) -> None:
        self._map = table
        self._slots = slots
        self._salt = salt

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "little") or 1

    def _offsets(self, hashed: int) -> Iterator[int]:
        start = hashed % self._slots
        for i in range(PROBE):
            yield _HEADER.size + ((start + i) % self._slots) * _SLOT.size

    def get(self, key: str) -> tuple[float, float] | None:
        """`(stamp, value)` last put under `key`, or None."""
        hashed = self._hash(key)
        for offset in self._offsets(hashed):
            found, stamp, value = _SLOT.unpack_from(self._map, offset)
            if found == hashed:
                return stamp, value
        return None

    def put(self, key: str, stamp: float, value: float) -> None:
        """Store `(stamp, value)` under `key`, reusing the oldest slot when none is free."""
        hashed = self._hash(key)
        chosen, oldest = -1, math.inf
        for offset in self._offsets(hashed):
            found, old_stamp, _ = _SLOT.unpack_from(self._map, offset)
            if found == hashed:
                chosen = offset
                break
            if found == 0:
                old_stamp = -math.inf  # a free slot beats any occupied one
            if old_stamp < oldest:
                chosen, oldest = offset, old_stamp
        _SLOT.pack_into(self._map, chosen, hashed, stamp, value)

    def drop(self, key: str) -> None:
        hashed = self._hash(key)
        for offset in self._offsets(hashed):
            if _SLOT.unpack_from(self._map, offset)[0] == hashed:
                _SLOT.pack_into(self._map, offset, 0, 0.0, 0.0)


class SharedTable:
    """The table in the file at `path`, shared by every process that opens it.

    With no `path` the table is private to this process (tests, one-off commands).
    """

    def __init__(self, path: Path | None, slots: int = 1 << 16) -> None:
        self.path = path
        self.slots = slots
        self._pid = -1
        self._fd = -1
        self._view: Slots | None = None

    def _open(self) -> Slots:
        # opened in the process that uses it: a descriptor inherited through fork shares its
        # flock with the parent, which would then not exclude the child
        if self.path is None:
            table = mmap.mmap(-1, _HEADER.size + self.slots * _SLOT.size)
            slots, salt = self.slots, os.urandom(16)
            _HEADER.pack_into(table, 0, _MAGIC, slots, salt)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                slots, salt = _prepare(fd, self.slots)
                table = mmap.mmap(fd, _HEADER.size + slots * _SLOT.size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._fd = fd
        self._pid = os.getpid()
        self._view = Slots(table, slots, salt)
        return self._view

    @contextlib.contextmanager
    def locked(self) -> Iterator[Slots]:
        """The table, under the host-wide lock until the block ends (keep the block short)."""
        view = self._view if self._pid == os.getpid() else None
        if view is None:
            view = self._open()
        if self._fd < 0:
            yield view
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield view
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take(self, key: str, limit: Limit, now: float) -> int:
        """Take a token from `key`'s bucket: 0 when taken, else whole seconds until one is."""
        with self.locked() as slots:
            tokens = limit.level(slots.get(key), now)
            if tokens < 1.0:
                return limit.wait(tokens)
            slots.put(key, now, tokens - 1.0)
            return 0


def _prepare(fd: int, slots: int) -> tuple[int, bytes]:
    """The table's size and salt; a new (or unreadable) file is laid out for `slots` first.

    A file another process laid out is used as it is, whatever size this one would choose:
    cutting a file that another process maps would crash it (SIGBUS) on its next access.
    """
    size = os.fstat(fd).st_size
    header = os.pread(fd, _HEADER.size, 0)
    if len(header) == _HEADER.size:
        magic, found, salt = _HEADER.unpack(header)
        if magic == _MAGIC and found > 0 and size == _HEADER.size + found * _SLOT.size:
            return found, salt
    salt = os.urandom(16)
    wanted = _HEADER.size + slots * _SLOT.size
    # nobody maps a file without a valid layout, so it can be cut and regrown (as zeros)
    os.ftruncate(fd, 0)
    os.ftruncate(fd, wanted)
    os.pwrite(fd, _HEADER.pack(_MAGIC, slots, salt), 0)
    return slots, salt
