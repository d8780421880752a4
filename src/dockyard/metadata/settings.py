"""Site-wide values every node shares (the token signing key, …)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import settings


async def get(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(select(settings.c.value).where(settings.c.key == key))).scalar()


async def get_or_set(db: Database, key: str, make: str) -> str:
    """The stored value, or `make` stored now when there is none (first writer wins)."""
    async with db.write() as conn:
        await conn.execute(db.insert_ignore(settings).values(key=key, value=make))
        value = await get(conn, key)
    assert value is not None
    return value


async def put(db: Database, conn: AsyncConnection, key: str, value: str) -> None:
    """Store `value` under `key`, replacing what was there."""
    await conn.execute(
        db.upsert(settings, [settings.c.key], value=value).values(key=key, value=value)
    )
