"""The event outbox: tags pushed or moved, recorded in the transaction that moved them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.tables import events, repositories, webhook_deliveries


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    kind: str
    repository_id: int
    repository: str
    tag: str
    old_digest: str | None
    new_digest: str
    media_type: str
    pusher: str
    created_at: float


async def record_push(
    conn: AsyncConnection,
    repository_id: int,
    tag: str,
    old_digest: str | None,
    new_digest: str,
    media_type: str,
    pusher: str,
) -> None:
    await conn.execute(
        insert(events).values(
            kind="push",
            repository_id=repository_id,
            tag=tag,
            old_digest=old_digest,
            new_digest=new_digest,
            media_type=media_type,
            pusher=pusher,
            created_at=time.time(),
            dispatched=False,
        )
    )


def _event(row: Any) -> EventRow:
    return EventRow(
        row.id,
        row.kind,
        row.repository_id,
        row.repository,
        row.tag,
        row.old_digest,
        row.new_digest,
        row.media_type,
        row.pusher,
        row.created_at,
    )


_SELECT = select(events, repositories.c.name.label("repository")).join(
    repositories, repositories.c.id == events.c.repository_id
)


async def pending(conn: AsyncConnection, limit: int, *, skip_locked: bool) -> list[EventRow]:
    """The oldest events not yet dispatched; locked for this transaction on PostgreSQL."""
    query = _SELECT.where(events.c.dispatched.is_(False)).order_by(events.c.id).limit(limit)
    if skip_locked:
        query = query.with_for_update(skip_locked=True, of=events)
    return [_event(row) for row in await conn.execute(query)]


async def mark_dispatched(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(update(events).where(events.c.id.in_(ids)).values(dispatched=True))


async def by_id(conn: AsyncConnection, event_id: int) -> EventRow | None:
    row = (await conn.execute(_SELECT.where(events.c.id == event_id))).first()
    return _event(row) if row else None


async def for_repository(
    conn: AsyncConnection, repository_id: int, limit: int = 50
) -> list[EventRow]:
    query = (
        _SELECT.where(events.c.repository_id == repository_id)
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    return [_event(row) for row in await conn.execute(query)]


async def prune(conn: AsyncConnection, before: float) -> int:
    """Forget dispatched events older than `before` that no delivery refers to; how many."""
    delivered = select(webhook_deliveries.c.event_id)
    statement = delete(events).where(
        and_(
            events.c.dispatched.is_(True),
            events.c.created_at < before,
            events.c.id.not_in(delivered),
        )
    )
    return (await conn.execute(statement)).rowcount


async def after(conn: AsyncConnection, event_id: int, limit: int) -> list[EventRow]:
    """The events after `event_id`, oldest first."""
    query = _SELECT.where(events.c.id > event_id).order_by(events.c.id).limit(limit)
    return [_event(row) for row in await conn.execute(query)]


async def last_id(conn: AsyncConnection) -> int:
    """The newest event's id (0 when there is none)."""
    found = await conn.scalar(select(events.c.id).order_by(events.c.id.desc()).limit(1))
    return int(found or 0)
