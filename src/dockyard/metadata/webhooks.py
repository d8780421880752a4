"""Webhooks of repositories and the history of their deliveries."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database, inserted_id
from dockyard.metadata.tables import repositories, webhook_deliveries, webhooks

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: int
    repository_id: int
    name: str
    url: str
    secret: str | None  # kept in clear: every delivery is signed with it
    active: bool
    created_at: float

    @property
    def has_secret(self) -> bool:
        return self.secret is not None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    webhook_id: int
    event_id: int
    event_uuid: str
    payload: str  # the JSON document, exactly as sent
    status: str  # PENDING, DELIVERED or FAILED
    attempts: int
    response_status: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: float | None
    created_at: float
    delivered_at: float | None
    callback_state: str | None
    callback_description: str | None
    callback_context: str | None
    callback_target_url: str | None
    callback_at: float | None


@dataclass(frozen=True, slots=True)
class RepositoryFacts:
    """What a webhook payload tells about a repository."""

    id: int
    name: str
    visibility: str
    created_at: float


def _webhook(row: Any) -> WebhookRow:
    return WebhookRow(
        row.id,
        row.repository_id,
        row.name,
        row.url,
        row.secret,
        bool(row.active),
        row.created_at,
    )


_DELIVERY_COLUMNS = [c for c in webhook_deliveries.c if c.name != "callback_token_hash"]


def _delivery(row: Any) -> DeliveryRow:
    return DeliveryRow(**{c.name: getattr(row, c.name) for c in _DELIVERY_COLUMNS})


async def insert_webhook(
    db: Database,
    conn: AsyncConnection,
    repository_id: int,
    name: str,
    url: str,
    secret: str | None,
    active: bool,
    now: float,
) -> WebhookRow | None:
    """Add a webhook; None when the repository already has one of that name."""
    values = {
        "repository_id": repository_id,
        "name": name,
        "url": url,
        "secret": secret,
        "active": active,
        "created_at": now,
    }
    result = await conn.execute(db.insert_ignore(webhooks).values(**values))
    if result.rowcount == 0:
        return None
    return await webhook_by_name(conn, repository_id, name)


async def webhook(conn: AsyncConnection, webhook_id: int) -> WebhookRow | None:
    row = (await conn.execute(select(webhooks).where(webhooks.c.id == webhook_id))).first()
    return _webhook(row) if row else None


async def webhook_by_name(
    conn: AsyncConnection, repository_id: int, name: str
) -> WebhookRow | None:
    query = select(webhooks).where(
        and_(webhooks.c.repository_id == repository_id, webhooks.c.name == name)
    )
    row = (await conn.execute(query)).first()
    return _webhook(row) if row else None


async def webhooks_of(conn: AsyncConnection, repository_id: int) -> list[WebhookRow]:
    """A repository's webhooks, by name."""
    query = (
        select(webhooks).where(webhooks.c.repository_id == repository_id).order_by(webhooks.c.name)
    )
    return [_webhook(row) for row in await conn.execute(query)]


async def active_webhooks(
    conn: AsyncConnection, repository_ids: Collection[int]
) -> list[WebhookRow]:
    """The active webhooks of these repositories, in the order they were created."""
    if not repository_ids:
        return []
    query = (
        select(webhooks)
        .where(and_(webhooks.c.repository_id.in_(list(repository_ids)), webhooks.c.active))
        .order_by(webhooks.c.id)
    )
    return [_webhook(row) for row in await conn.execute(query)]


async def update_webhook(conn: AsyncConnection, webhook_id: int, values: Mapping[str, Any]) -> None:
    """Set some of name, url, secret and active."""
    if values:
        await conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))


async def delete_webhook(conn: AsyncConnection, webhook_id: int) -> bool:
    """Delete a webhook and (by cascade) its deliveries."""
    result = await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
    return result.rowcount > 0


async def repository_facts(
    conn: AsyncConnection, repository_ids: Collection[int]
) -> dict[int, RepositoryFacts]:
    if not repository_ids:
        return {}
    query = select(
        repositories.c.id,
        repositories.c.name,
        repositories.c.visibility,
        repositories.c.created_at,
    ).where(repositories.c.id.in_(list(repository_ids)))
    return {
        row.id: RepositoryFacts(row.id, row.name, row.visibility, row.created_at)
        for row in await conn.execute(query)
    }


async def insert_delivery(
    conn: AsyncConnection,
    webhook_id: int,
    event_id: int,
    event_uuid: str,
    payload: str,
    callback_token_hash: str,
    now: float,
) -> int:
    """Add a pending delivery of `payload` and return its id."""
    result = await conn.execute(
        insert(webhook_deliveries).values(
            webhook_id=webhook_id,
            event_id=event_id,
            event_uuid=event_uuid,
            payload=payload,
            status=PENDING,
            attempts=0,
            created_at=now,
            callback_token_hash=callback_token_hash,
        )
    )
    return inserted_id(result)


async def delivery(conn: AsyncConnection, delivery_id: int) -> DeliveryRow | None:
    query = select(*_DELIVERY_COLUMNS).where(webhook_deliveries.c.id == delivery_id)
    row = (await conn.execute(query)).first()
    return _delivery(row) if row else None


async def deliveries(
    conn: AsyncConnection,
    webhook_id: int,
    after_id: int | None,
    limit: int,
    newest_first: bool,
) -> list[DeliveryRow]:
    """A webhook's deliveries in id order (or newest first), after `after_id` in that order."""
    column = webhook_deliveries.c.id
    query = select(*_DELIVERY_COLUMNS).where(webhook_deliveries.c.webhook_id == webhook_id)
    if after_id is not None:
        query = query.where(column < after_id if newest_first else column > after_id)
    query = query.order_by(column.desc() if newest_first else column).limit(limit)
    return [_delivery(row) for row in await conn.execute(query)]


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: int,
    *,
    status: str,
    response_status: int | None,
    response_excerpt: str | None,
    error: str | None,
    duration_ms: float | None,
    delivered_at: float | None,
) -> None:
    """Count one attempt and keep its outcome (the last attempt's outcome is what is shown)."""
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            attempts=webhook_deliveries.c.attempts + 1,
            status=status,
            response_status=response_status,
            response_excerpt=response_excerpt,
            error=error,
            duration_ms=duration_ms,
            delivered_at=delivered_at,
        )
    )


async def set_status(
    conn: AsyncConnection, delivery_id: int, status: str, error: str | None = None
) -> None:
    """Change a delivery's status (and, when given, its error) without counting an attempt."""
    values = {"status": status} if error is None else {"status": status, "error": error}
    await conn.execute(
        update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values)
    )


async def record_callback(
    conn: AsyncConnection,
    callback_token_hash: str,
    *,
    state: str,
    description: str | None,
    context: str | None,
    target_url: str | None,
    now: float,
) -> int | None:
    """Keep the receiver's answer on the delivery its token belongs to; its id, or None."""
    query = select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.callback_token_hash == callback_token_hash
    )
    delivery_id = (await conn.execute(query)).scalar()
    if delivery_id is None:
        return None
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            callback_state=state,
            callback_description=description,
            callback_context=context,
            callback_target_url=target_url,
            callback_at=now,
        )
    )
    return int(delivery_id)
