"""Repository webhooks: their settings, turning push events into deliveries, and delivering.

A tag pushed or moved leaves an event row (the outbox, written with the tag).
`dispatch_events` turns each into one delivery row per active webhook of its repository, and
one "webhook.deliver" job each, in one transaction. `deliver` is that job's handler: it POSTs
the stored payload bytes, records the outcome, and raises `Retry` while trying again may help.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth.secrets import token_hash
from dockyard.client.retry import is_retryable_error
from dockyard.config import Settings
from dockyard.hub import payloads
from dockyard.hub.errors import Conflict, Invalid, NotFound
from dockyard.hub.jobs import Handler, Job, JobContext, JobQueue, Retry
from dockyard.hub.webhook_responses import FAILED, RETRY, Attempt, judge, read_excerpt
from dockyard.hub.webhook_urls import (
    Resolve,
    SessionFactory,
    WebhookUrlRefused,
    check_resolved,
    parse_webhook_url,
    system_resolve,
)
from dockyard.metadata import events
from dockyard.metadata import webhooks as sql
from dockyard.metadata.db import Database
from dockyard.metadata.events import EventRow
from dockyard.metadata.webhooks import DeliveryRow, RepositoryFacts, WebhookRow

DELIVER_JOB = "webhook.deliver"
CALLBACK_STATES = frozenset({"success", "failure", "error"})


class WebhookNotFound(NotFound, LookupError):
    """No such webhook on this repository."""


class DeliveryNotFound(NotFound, LookupError):
    """No such delivery (of this webhook)."""


class UnknownCallback(NotFound, LookupError):
    """No delivery has this callback token."""


class WebhookNameTaken(Conflict, ValueError):
    """The repository already has a webhook of this name."""


class InvalidWebhookRequest(Invalid, ValueError):
    """A webhook field or callback value that cannot be used; the message says which."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    public_url: str  # where receivers reach this server (repo_url, callback_url)
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    allow_private: bool = False  # loopback and private networks

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSettings:
        return cls(
            settings.public_url or f"http://{settings.listen}",
            settings.webhook_timeout_seconds,
            settings.webhook_max_attempts,
            settings.webhook_allow_private,
        )


class Webhooks:
    """Webhooks per repository, their deliveries, and the job handler that sends them.

    `session_factory` must make sessions that check the addresses they connect to (see
    `guarded_sessions`): a delivery relies on it for host names; `resolve` serves only the
    check when a webhook is saved.
    """

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        settings: WebhookSettings,
        session_factory: SessionFactory,
        *,
        resolve: Resolve = system_resolve,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.queue = queue
        self.settings = settings
        self._sessions = session_factory
        self._resolve = resolve
        self._clock = clock

    # --- webhooks -------------------------------------------------------------------------------

    async def create(
        self,
        repository_id: int,
        name: str,
        url: str,
        secret: str | None = None,
        *,
        active: bool = True,
    ) -> WebhookRow:
        """Add a webhook to a repository; the URL is checked (WebhookUrlRefused) first."""
        name, secret = _check_name(name), _check_secret(secret)
        await self._check_url(url)
        async with self.db.write() as conn:
            row = await sql.insert_webhook(
                self.db, conn, repository_id, name, url, secret, active, self._clock()
            )
        if row is None:
            raise WebhookNameTaken(f"this repository already has a webhook named {name!r}")
        return row

    async def for_repository(self, repository_id: int) -> list[WebhookRow]:
        """A repository's webhooks, by name."""
        async with self.db.read() as conn:
            return await sql.webhooks_of(conn, repository_id)

    async def get(self, repository_id: int, webhook_id: int) -> WebhookRow:
        """The repository's webhook with this id (WebhookNotFound otherwise)."""
        async with self.db.read() as conn:
            return await _owned(conn, repository_id, webhook_id)

    async def update(
        self,
        repository_id: int,
        webhook_id: int,
        *,
        name: str | None = None,
        url: str | None = None,
        secret: str | None = None,
        active: bool | None = None,
    ) -> WebhookRow:
        """Change what is given; `secret=""` removes the secret, None keeps it."""
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = _check_name(name)
        if url is not None:
            values["url"] = await self._check_url(url)
        if secret is not None:
            values["secret"] = _check_secret(secret)
        if active is not None:
            values["active"] = active
        taken = WebhookNameTaken(
            f"this repository already has a webhook named {values.get('name')!r}"
        )
        try:
            async with self.db.write() as conn:
                await _owned(conn, repository_id, webhook_id)
                same = await sql.webhook_by_name(conn, repository_id, values.get("name", ""))
                if same is not None and same.id != webhook_id:
                    raise taken
                await sql.update_webhook(conn, webhook_id, values)
                return await _owned(conn, repository_id, webhook_id)
        except IntegrityError:  # a concurrent rename took the name first
            raise taken from None

    async def delete(self, repository_id: int, webhook_id: int) -> None:
        """Delete the webhook and its delivery history."""
        async with self.db.write() as conn:
            await _owned(conn, repository_id, webhook_id)
            await sql.delete_webhook(conn, webhook_id)

    async def _check_url(self, url: str) -> str:
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                await check_resolved(
                    url, allow_private=self.settings.allow_private, resolve=self._resolve
                )
        except (OSError, TimeoutError):
            pass  # a name that does not resolve (yet) is judged again at every delivery
        return url

    # --- events into deliveries -------------------------------------------------------------

    async def dispatch_events(self, limit: int = 100) -> int:
        """Turn up to `limit` undispatched events into deliveries and jobs; the events' count.

        One write transaction: delivery rows, their jobs and the events' `dispatched` mark
        commit together. On PostgreSQL the events are taken FOR UPDATE SKIP LOCKED, so
        dispatchers on several nodes never dispatch one event twice.
        """
        async with self.db.read() as conn:  # most ticks find nothing: no write lock for that
            if not await events.pending(conn, 1, skip_locked=False):
                return 0
        async with self.db.write() as conn:
            pending = await events.pending(conn, limit, skip_locked=not self.db.is_sqlite)
            if not pending:
                return 0
            repository_ids = {event.repository_id for event in pending}
            hooks = await sql.active_webhooks(conn, repository_ids)
            facts = await sql.repository_facts(conn, repository_ids)
            for event in pending:
                for hook in hooks:
                    # a webhook hears of what happens after it was made, not before
                    if (
                        hook.repository_id == event.repository_id
                        and hook.created_at <= event.created_at
                    ):
                        await self._add_delivery(conn, event, hook, facts[event.repository_id])
            await events.mark_dispatched(conn, [event.id for event in pending])
        return len(pending)

    async def _add_delivery(
        self, conn: AsyncConnection, event: EventRow, hook: WebhookRow, facts: RepositoryFacts
    ) -> None:
        token = secrets.token_urlsafe(32)
        public_url = self.settings.public_url
        payload = payloads.push_payload(
            event, facts, public_url=public_url, callback=payloads.callback_url(public_url, token)
        )
        delivery_id = await sql.insert_delivery(
            conn,
            hook.id,
            event.id,
            str(uuid.uuid4()),
            payloads.encode(payload),
            token_hash(token),
            self._clock(),
        )
        await self._enqueue(conn, delivery_id)

    async def _enqueue(self, conn: AsyncConnection, delivery_id: int) -> int:
        return await self.queue.enqueue(
            DELIVER_JOB,
            {"delivery_id": delivery_id},
            dedupe_key=f"{DELIVER_JOB}:{delivery_id}",
            max_attempts=self.settings.max_attempts,
            conn=conn,
        )

    # --- delivering ---------------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """The job handlers this service provides, by job kind."""
        return {DELIVER_JOB: self.deliver}

    async def deliver(self, job: Job, ctx: JobContext | None = None) -> None:
        """Send one delivery (`job.payload["delivery_id"]`); raise Retry while that may help.

        2xx is delivered; what `client.retry` calls transient (408, 425, 429, 500, 502-504,
        timeouts, connection failures) is retried (after Retry-After when given) until the
        job's last attempt, which then fails the delivery; anything else (a redirect, another
        4xx or 5xx, a TLS failure) fails at once.
        """
        delivery_id = int(job.payload["delivery_id"])
        async with self.db.read() as conn:
            row = await sql.delivery(conn, delivery_id)
            hook = await sql.webhook(conn, row.webhook_id) if row else None
            event = await events.by_id(conn, row.event_id) if row else None
        if row is None or hook is None or row.status != sql.PENDING:
            return  # deleted with its webhook, or settled already
        if not hook.active:
            async with self.db.write() as conn:
                await sql.set_status(conn, row.id, sql.FAILED, "the webhook is disabled")
            return
        attempt = await self._post(hook, row, event)
        status = attempt.verdict
        if status == RETRY:
            status = sql.PENDING if job.attempts < job.max_attempts else sql.FAILED
        async with self.db.write() as conn:
            await sql.record_attempt(
                conn,
                row.id,
                status=status,
                response_status=attempt.response_status,
                response_excerpt=attempt.excerpt,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                delivered_at=self._clock() if status == sql.DELIVERED else None,
            )
        if status == sql.PENDING:
            raise Retry(attempt.error or "retrying", attempt.retry_after)

    async def _post(self, hook: WebhookRow, row: DeliveryRow, event: EventRow | None) -> Attempt:
        """POST the stored payload once (the lookup and the request within the timeout)."""
        body = row.payload.encode()
        # the id is the delivery's on every attempt; the timestamp is this attempt's, so a
        # receiver that refuses old timestamps refuses a captured request replayed later
        stamp = int(self._clock())
        headers = payloads.headers(event, row.event_uuid, hook.secret, body, stamp)
        timeout = self.settings.timeout_seconds
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                attempt = await self._send(hook.url, body, headers)
        except WebhookUrlRefused as exc:
            attempt = Attempt(FAILED, error=str(exc))
        except TimeoutError:
            attempt = Attempt(RETRY, error=f"no response within {timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            verdict = RETRY if is_retryable_error(exc) else FAILED
            attempt = Attempt(verdict, error=f"{type(exc).__name__}: {exc}")
        return dataclasses.replace(attempt, duration_ms=(time.monotonic() - started) * 1000)

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """Check `url`, POST without following redirects, judge the answer.

        The URL is checked without DNS here: the session's resolver checks every address the
        name resolves to as it connects, so a delivery looks the name up once.
        """
        parse_webhook_url(url, allow_private=self.settings.allow_private)
        async with (
            self._sessions() as session,
            session.post(url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            excerpt = await read_excerpt(response)
            return judge(response.status, response.headers, excerpt, self._clock())

    # --- history, redelivery, callbacks -------------------------------------------------------

    async def deliveries(
        self,
        webhook_id: int,
        after_id: int | None = None,
        limit: int = 50,
        *,
        newest_first: bool = False,
    ) -> list[DeliveryRow]:
        """A webhook's deliveries in id order (or newest first), after `after_id` in that order."""
        async with self.db.read() as conn:
            return await sql.deliveries(conn, webhook_id, after_id, limit, newest_first)

    async def delivery(self, delivery_id: int) -> DeliveryRow:
        """One delivery (DeliveryNotFound otherwise)."""
        async with self.db.read() as conn:
            row = await sql.delivery(conn, delivery_id)
        if row is None:
            raise DeliveryNotFound(f"there is no webhook delivery {delivery_id}")
        return row

    async def redeliver(self, delivery_id: int, *, webhook_id: int | None = None) -> int:
        """Send a delivery's very payload again, through a new job; that job's id.

        With `webhook_id`, the delivery must belong to that webhook (DeliveryNotFound).
        """
        async with self.db.write() as conn:
            row = await sql.delivery(conn, delivery_id)
            if row is None or webhook_id not in (None, row.webhook_id):
                raise DeliveryNotFound(f"there is no webhook delivery {delivery_id}")
            hook = await sql.webhook(conn, row.webhook_id)
            if hook is None or not hook.active:
                raise InvalidWebhookRequest("the webhook is disabled: enable it to redeliver")
            await sql.set_status(conn, row.id, sql.PENDING)
            return await self._enqueue(conn, row.id)

    async def record_callback(
        self,
        token: str,
        state: str,
        description: str | None = None,
        context: str | None = None,
        target_url: str | None = None,
    ) -> DeliveryRow:
        """Keep a receiver's answer (Docker Hub's callback) on the delivery `token` belongs to."""
        if state not in CALLBACK_STATES:
            raise InvalidWebhookRequest(
                f"state must be one of success, failure, error; not {state!r}"
            )
        _check_length("description", description, 255)
        _check_length("context", context, 100)
        _check_length("target_url", target_url, 2048)
        if target_url is not None and not target_url.lower().startswith(("http://", "https://")):
            raise InvalidWebhookRequest("target_url must be an http:// or https:// URL")
        async with self.db.write() as conn:
            delivery_id = await sql.record_callback(
                conn,
                token_hash(token),
                state=state,
                description=description,
                context=context,
                target_url=target_url,
                now=self._clock(),
            )
            row = await sql.delivery(conn, delivery_id) if delivery_id is not None else None
        if row is None:
            raise UnknownCallback("no webhook delivery has this callback URL")
        return row


async def _owned(conn: AsyncConnection, repository_id: int, webhook_id: int) -> WebhookRow:
    row = await sql.webhook(conn, webhook_id)
    if row is None or row.repository_id != repository_id:
        raise WebhookNotFound(f"this repository has no webhook {webhook_id}")
    return row


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255 or not name.isprintable():
        raise InvalidWebhookRequest("a webhook name is 1 to 255 printable characters")
    return name


def _check_secret(secret: str | None) -> str | None:
    if secret is not None and len(secret) > 1024:
        raise InvalidWebhookRequest("a webhook secret is at most 1024 characters")
    prefix = payloads.SECRET_PREFIX
    if secret and secret.startswith(prefix) and payloads.decode_standard_secret(secret) is None:
        raise InvalidWebhookRequest(
            f"a secret starting with {prefix} is in the Standard Webhooks "
            "format: base64 of at least one byte after the prefix; this one does not decode"
        )
    return secret or None


def _check_length(field: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InvalidWebhookRequest(f"{field} is at most {limit} characters")
