"""The limits' token buckets as rows of `limit_buckets`, for a site whose nodes share a
PostgreSQL database (`auth/limits.py` decides when). A bucket is `(stamp, tokens)` as in
`storage/buckets.py`; times are the callers' (nodes keep their clocks in step with NTP, and a
skew of milliseconds moves a refill by as little)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import limit_buckets


def row_key(name: str) -> bytes:
    """The row's key for a bucket's name: fixed-size, and free of the NULs names may hold."""
    return hashlib.blake2b(name.encode(), digest_size=16).digest()


_P = {name: f"CAST(:{name} AS double precision)" for name in ("now", "capacity", "rate", "most")}
_LEVEL = "LEAST({capacity}, b.tokens + GREATEST(0.0, {now} - b.stamp) * {rate})".format(**_P)
_TAKEN = f"(CASE WHEN {_LEVEL} >= 1.0 THEN LEAST({_P['most']}, floor({_LEVEL})) ELSE 0.0 END)"
_FIRST = "LEAST({most}, floor({capacity}))".format(**_P)
# One statement, so that two nodes leasing from one bucket at once queue on its row: the
# level is refilled to `now`, up to `most` whole tokens are taken, and the row says how many.
_LEASE = text(
    f"""
    INSERT INTO limit_buckets AS b (key, stamp, tokens, taken, idle_at)
    VALUES (:key, {_P["now"]}, {_P["capacity"]} - {_FIRST}, CAST({_FIRST} AS integer),
            {_P["now"]} + {_FIRST} / {_P["rate"]})
    ON CONFLICT (key) DO UPDATE SET
        stamp = {_P["now"]},
        taken = CAST({_TAKEN} AS integer),
        tokens = {_LEVEL} - {_TAKEN},
        idle_at = {_P["now"]} + ({_P["capacity"]} - {_LEVEL} + {_TAKEN}) / {_P["rate"]}
    RETURNING taken, tokens
    """
)


async def lease(
    db: Database, name: str, capacity: float, rate: float, now: float, most: int
) -> tuple[int, float]:
    """Take up to `most` whole tokens from the bucket `name` (capacity, refilled at `rate` a
    second; full when it has no row): how many were taken, and the tokens left."""
    values = {"key": row_key(name), "now": now, "capacity": capacity, "rate": rate, "most": most}
    async with db.write() as conn:
        taken, tokens = (await conn.execute(_LEASE, values)).one()
    return int(taken), float(tokens)


async def read(conn: AsyncConnection, names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """`(stamp, tokens)` of each bucket of `names` that has a row."""
    keys = {row_key(name): name for name in names}
    query = select(limit_buckets.c.key, limit_buckets.c.stamp, limit_buckets.c.tokens).where(
        limit_buckets.c.key.in_(list(keys))
    )
    return {keys[key]: (stamp, tokens) for key, stamp, tokens in await conn.execute(query)}


async def write(
    db: Database, conn: AsyncConnection, name: str, stamp: float, tokens: float, idle_at: float
) -> None:
    """Set the bucket `name`; its row may be deleted after `idle_at`."""
    values = {"stamp": stamp, "tokens": tokens, "taken": 0, "idle_at": idle_at}
    upsert = db.upsert(limit_buckets, [limit_buckets.c.key], **values)
    await conn.execute(upsert.values(key=row_key(name), **values))


async def forget(conn: AsyncConnection, name: str) -> None:
    await conn.execute(delete(limit_buckets).where(limit_buckets.c.key == row_key(name)))


async def prune(db: Database, now: float) -> int:
    """Delete the rows idle since before `now`; how many."""
    async with db.write() as conn:
        result = await conn.execute(delete(limit_buckets).where(limit_buckets.c.idle_at < now))
    return int(result.rowcount)
