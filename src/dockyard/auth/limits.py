"""Where the limits count: token buckets shared by the whole site.

The rate limit (`api/ratelimit.py`) and the sign-in throttle (`throttle.py`) count in
`Buckets`. A site on SQLite is one host: its workers share tables in mmap'd files
(`HostBuckets`, over `storage/buckets.py`), which cost microseconds and no database write. A
site on PostgreSQL may be several nodes behind a load balancer: there the buckets are rows of
`limit_buckets` (`SiteBuckets`), so a limit holds for the site whichever node answers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from dockyard.metadata import buckets as rows
from dockyard.metadata.db import Database
from dockyard.storage.buckets import Limit, SharedTable

Want = tuple[str, Limit]  # a bucket's name and shape

PRUNE_SECONDS = 60.0  # how often a process deletes the site's idle rows
NOTE_SECONDS = 1.0  # how long a process trusts the site's `emptied` it read
_NOTE = "\0emptied"  # the site's row for `emptied` (no bucket name starts with a NUL)


class Buckets(Protocol):
    """Token buckets by name, each of the shape (`Limit`) its caller gives."""

    async def lease(self, name: str, limit: Limit, now: float, most: int) -> tuple[int, int]:
        """Take up to `most` whole tokens: (how many, 0), or (0, whole seconds until one is)."""
        ...

    async def levels(self, wanted: Sequence[Want], now: float) -> list[float]:
        """The tokens in each bucket (a read, which a concurrent `take` may overtake)."""
        ...

    async def take(
        self, wanted: Sequence[Want], needed: Sequence[bool], now: float
    ) -> tuple[int, float] | None:
        """If every bucket marked `needed` holds a token, take one from each bucket that has
        one and answer None; otherwise take nothing and answer the first refusing bucket's
        index and tokens. One decision for all of them, whoever takes at the same time."""
        ...

    async def give_back(self, wanted: Sequence[Want], forget: Sequence[bool], now: float) -> None:
        """Give a token back to each bucket, or forget those marked (they are full again)."""
        ...

    async def emptied(self) -> float:
        """When a `take` last left a bucket with under one token (0.0: not lately)."""
        ...

    async def remember(self, name: str, now: float, seconds: float) -> None:
        """Note that `name` was seen at `now`, for `seconds` at least."""
        ...

    async def seen(self, name: str) -> float | None:
        """When `name` was last remembered, or None."""
        ...


class HostBuckets:
    """The buckets in `table` (and the remembered names in `known`), shared by this host's
    workers; each call is a few microseconds under the file's lock, with no await inside."""

    def __init__(self, table: SharedTable, known: SharedTable | None = None) -> None:
        self.table = table
        self.known = known if known is not None else table

    async def lease(self, name: str, limit: Limit, now: float, most: int) -> tuple[int, int]:
        # without the table's lock: taken on every lease, it made each worker wait whenever
        # another was descheduled holding it; two workers leasing for one name in the same
        # microseconds may take a lease more than there was, which a limit can afford
        return self.table.unlocked().lease(name, limit, now, most)

    async def levels(self, wanted: Sequence[Want], now: float) -> list[float]:
        slots = self.table.unlocked()
        return [limit.level(slots.get(name), now) for name, limit in wanted]

    async def take(
        self, wanted: Sequence[Want], needed: Sequence[bool], now: float
    ) -> tuple[int, float] | None:
        with self.table.locked() as slots:
            levels = [limit.level(slots.get(name), now) for name, limit in wanted]
            refused = _refusal(levels, needed)
            if refused is None:
                for (name, _), tokens in zip(wanted, levels, strict=True):
                    slots.put(name, now, max(0.0, tokens - 1.0))
                if min(levels) < 2.0:
                    slots.note = now
        return refused

    async def give_back(self, wanted: Sequence[Want], forget: Sequence[bool], now: float) -> None:
        with self.table.locked() as slots:
            for (name, limit), drop in zip(wanted, forget, strict=True):
                if drop:
                    slots.drop(name)
                else:
                    level = limit.level(slots.get(name), now)
                    slots.put(name, now, min(limit.capacity, level + 1.0))

    async def emptied(self) -> float:
        return self.table.unlocked().note

    async def remember(self, name: str, now: float, seconds: float) -> None:
        with self.known.locked() as slots:
            slots.put(name, now, 1.0)  # the oldest go first when the table is full

    async def seen(self, name: str) -> float | None:
        # a read, on the path of throttled requests: a torn one costs an exemption once
        entry = self.known.unlocked().get(name)
        return None if entry is None else entry[0]


class SiteBuckets:
    """The buckets as rows of the site's database (PostgreSQL), whichever node asks.

    A lease is one statement; a `take` or `give_back` is a short transaction under one
    advisory lock (failed sign-ins are few, each costs an argon2 check). Each process deletes
    the idle rows once a minute, and reads the site's `emptied` at most once a second.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pruned = 0.0
        self._note = (0.0, -NOTE_SECONDS)  # (the site's `emptied`, when this process read it)

    async def lease(self, name: str, limit: Limit, now: float, most: int) -> tuple[int, int]:
        await self._prune(now)
        taken, tokens = await rows.lease(self.db, name, limit.capacity, limit.per_second, now, most)
        return (taken, 0) if taken else (0, limit.wait(tokens))

    async def levels(self, wanted: Sequence[Want], now: float) -> list[float]:
        async with self.db.read() as conn:
            found = await rows.read(conn, [name for name, _ in wanted])
        return [limit.level(found.get(name), now) for name, limit in wanted]

    async def take(
        self, wanted: Sequence[Want], needed: Sequence[bool], now: float
    ) -> tuple[int, float] | None:
        await self._prune(now)
        async with self.db.write() as conn:
            await self.db.lock(conn, "limit-buckets")
            found = await rows.read(conn, [name for name, _ in wanted])
            levels = [limit.level(found.get(name), now) for name, limit in wanted]
            refused = _refusal(levels, needed)
            if refused is None:
                for (name, limit), tokens in zip(wanted, levels, strict=True):
                    left = max(0.0, tokens - 1.0)
                    await rows.write(self.db, conn, name, now, left, _full_at(limit, left, now))
                if min(levels) < 2.0:
                    await rows.write(self.db, conn, _NOTE, now, 0.0, now + 86400.0)
        if refused is None and min(levels) < 2.0:
            self._note = (now, time.monotonic())  # this process knows at once
        return refused

    async def give_back(self, wanted: Sequence[Want], forget: Sequence[bool], now: float) -> None:
        async with self.db.write() as conn:
            await self.db.lock(conn, "limit-buckets")
            found = await rows.read(conn, [name for name, _ in wanted])
            for (name, limit), drop in zip(wanted, forget, strict=True):
                if drop:
                    await rows.forget(conn, name)
                    continue
                level = min(limit.capacity, limit.level(found.get(name), now) + 1.0)
                await rows.write(self.db, conn, name, now, level, _full_at(limit, level, now))

    async def emptied(self) -> float:
        noted, read_at = self._note
        if time.monotonic() - read_at < NOTE_SECONDS:
            return noted
        async with self.db.read() as conn:
            found = await rows.read(conn, [_NOTE])
        noted = found[_NOTE][0] if _NOTE in found else 0.0
        self._note = (noted, time.monotonic())
        return noted

    async def remember(self, name: str, now: float, seconds: float) -> None:
        async with self.db.write() as conn:
            await rows.write(self.db, conn, name, now, 1.0, now + seconds)

    async def seen(self, name: str) -> float | None:
        async with self.db.read() as conn:
            found = await rows.read(conn, [name])
        return found[name][0] if name in found else None

    async def _prune(self, now: float) -> None:
        if now - self._pruned >= PRUNE_SECONDS:
            self._pruned = now
            await rows.prune(self.db, now)


def buckets_for(db: Database, table: SharedTable, known: SharedTable | None = None) -> Buckets:
    """The site's buckets: in the database when several nodes may share it, else the host's."""
    return HostBuckets(table, known) if db.is_sqlite else SiteBuckets(db)


def _refusal(levels: Sequence[float], needed: Sequence[bool]) -> tuple[int, float] | None:
    for i, (tokens, need) in enumerate(zip(levels, needed, strict=True)):
        if need and tokens < 1.0:
            return i, tokens
    return None


def _full_at(limit: Limit, tokens: float, now: float) -> float:
    """When a bucket holding `tokens` now is full again (its row is no longer needed)."""
    return now + (limit.capacity - tokens) / limit.per_second
