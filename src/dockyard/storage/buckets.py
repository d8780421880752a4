"""Token buckets shared by the processes of one host: a small hash table in an mmap'd file.

`dockyard serve` runs one worker process per core, and a limit kept in each process's memory
is really the limit times the workers. Every worker maps the same file (in the data folder's
`run/`, beside the cache stamps of `generation.py`), so a client's bucket is one bucket
whichever worker answers. An update holds an exclusive `flock` on the file for a few
microseconds; the kernel drops the lock of a process that dies, so a crash cannot wedge it.
Hot paths may read and write without it (`unlocked`) where a rare lost update is acceptable.

The file is a table of `(key hash, stamp, value)` slots. A key is hashed with a secret salt
kept in the file (a client cannot choose names that collide with another's), and lives in one
of the `PROBE` slots from its hash on (read in one go). When all of them hold other keys, the
slot touched longest ago is reused: eviction by age, never clearing the table. For a token
bucket the oldest slot is one that has refilled longest ago, so forgetting it changes nothing
once it is full.

Nodes on other hosts keep tables of their own: where several nodes share a site, its limits
count in the database instead (`auth/limits.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import struct
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROBE = 8
_MAGIC = b"DKYBKT2\0"
_HEADER = struct.Struct("=8sI4x16sd")  # magic, slots, salt, note
_NOTE = struct.Struct("=d")
_NOTE_OFFSET = _HEADER.size - _NOTE.size
_SLOT = struct.Struct("=Qdd")  # key hash (0: empty), stamp (epoch seconds), value
_WINDOW = struct.Struct("=" + "Qdd" * PROBE)


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

    def _hash(self, key: str) -> tuple[int, int]:
        """The key's hash and the offset of its window of `PROBE` slots."""
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        hashed = int.from_bytes(digest, "little") or 1
        return hashed, _HEADER.size + (hashed % self._slots) * _SLOT.size

    @property
    def note(self) -> float:
        """One number beside the slots, for the table's user (0.0 at first)."""
        value: float = _NOTE.unpack_from(self._map, _NOTE_OFFSET)[0]
        return value

    @note.setter
    def note(self, value: float) -> None:
        _NOTE.pack_into(self._map, _NOTE_OFFSET, value)

    def get(self, key: str) -> tuple[float, float] | None:
        """`(stamp, value)` last put under `key`, or None."""
        hashed, window = self._hash(key)
        found = _WINDOW.unpack_from(self._map, window)  # one read: cheaper than slot by slot
        hashes = found[::3]
        if hashed not in hashes:
            return None
        i = hashes.index(hashed) * 3
        return found[i + 1], found[i + 2]

    def put(self, key: str, stamp: float, value: float) -> None:
        """Store `(stamp, value)` under `key`, reusing the oldest slot when none is free."""
        hashed, window = self._hash(key)
        found = _WINDOW.unpack_from(self._map, window)
        _SLOT.pack_into(self._map, _place(hashed, window, found), hashed, stamp, value)

    def lease(self, key: str, limit: Limit, now: float, most: int) -> tuple[int, int]:
        """Take up to `most` whole tokens from `key`'s bucket: (how many, 0), or (0, whole
        seconds until one is there). `get` then `put` with one hash and one read."""
        hashed, window = self._hash(key)
        found = _WINDOW.unpack_from(self._map, window)
        hashes = found[::3]
        entry = None
        if hashed in hashes:
            i = hashes.index(hashed) * 3
            entry = found[i + 1], found[i + 2]
        tokens = limit.level(entry, now)
        if tokens < 1.0:
            return 0, limit.wait(tokens)
        taken = min(most, int(tokens))
        _SLOT.pack_into(self._map, _place(hashed, window, found), hashed, now, tokens - taken)
        return taken, 0

    def drop(self, key: str) -> None:
        hashed, window = self._hash(key)
        hashes = _WINDOW.unpack_from(self._map, window)[::3]
        if hashed in hashes:
            _SLOT.pack_into(self._map, window + hashes.index(hashed) * _SLOT.size, 0, 0.0, 0.0)


def _place(hashed: int, window: int, found: tuple[float, ...]) -> int:
    """The offset for `hashed` in its window: its own slot, a free one, or the oldest."""
    hashes = found[::3]
    if hashed in hashes:
        chosen = hashes.index(hashed)
    elif 0 in hashes:
        chosen = hashes.index(0)
    else:
        stamps = found[1::3]
        chosen = stamps.index(min(stamps))
    return window + chosen * _SLOT.size


class SharedTable:
    """The table in the file at `path`, shared by every process that opens it.

    With no `path` the table is private to this process (tests, one-off commands).
    """

    def __init__(self, path: Path | None, slots: int = 1 << 16) -> None:
        self.path = path
        self.slots = slots
        self._fd = -1
        self._view: Slots | None = None
        _TABLES.add(self)

    def _forget(self) -> None:
        """In a child after fork: open again on first use, for a descriptor inherited through
        fork shares its flock with the parent, which would then not exclude the child."""
        self._view = None
        self._fd = -1

    def _open(self) -> Slots:
        if self.path is None:
            table = mmap.mmap(-1, _size(self.slots))
            slots, salt = self.slots, os.urandom(16)
            _HEADER.pack_into(table, 0, _MAGIC, slots, salt, 0.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                slots, salt = _prepare(fd, self.slots)
                table = mmap.mmap(fd, _size(slots))
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._fd = fd
        self._view = Slots(table, slots, salt)
        return self._view

    def unlocked(self) -> Slots:
        """The table without the lock: reads may race a writer (a decision made on such a read
        is off by one request at worst); for checks on every request, where a lock would
        make the workers queue for each other."""
        return self._view if self._view is not None else self._open()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Slots]:
        """The table, under the host-wide lock until the block ends (keep the block short)."""
        view = self.unlocked()
        if self._fd < 0:
            yield view
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield view
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


_TABLES: weakref.WeakSet[SharedTable] = weakref.WeakSet()


def _after_fork() -> None:
    for table in list(_TABLES):
        table._forget()


os.register_at_fork(after_in_child=_after_fork)


def _prepare(fd: int, slots: int) -> tuple[int, bytes]:
    """The table's size and salt; a new (or unreadable) file is laid out for `slots` first.

    A file another process laid out is used as it is, whatever size this one would choose:
    cutting a file that another process maps would crash it (SIGBUS) on its next access.
    """
    size = os.fstat(fd).st_size
    header = os.pread(fd, _HEADER.size, 0)
    if len(header) == _HEADER.size:
        magic, found, salt, _ = _HEADER.unpack(header)
        if magic == _MAGIC and found > 0 and size == _size(found):
            return found, salt
    salt = os.urandom(16)
    wanted = _size(slots)
    # nobody maps a file without a valid layout, so it can be cut and regrown (as zeros)
    os.ftruncate(fd, 0)
    os.ftruncate(fd, wanted)
    os.pwrite(fd, _HEADER.pack(_MAGIC, slots, salt, 0.0), 0)
    return slots, salt


def _size(slots: int) -> int:
    # the last window runs PROBE - 1 slots past the end instead of wrapping around
    return _HEADER.size + (slots + PROBE - 1) * _SLOT.size
