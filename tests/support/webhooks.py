"""Webhook tests' pieces: a receiver on 127.0.0.1 that records what it gets, the service over a
database, and helpers that make a repository, an event and its delivery."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from dockyard.hub.jobs import Job, JobQueue
from dockyard.hub.webhook_urls import Resolve, guarded_sessions
from dockyard.hub.webhooks import Webhooks, WebhookSettings
from dockyard.metadata import events, repositories
from dockyard.metadata.db import Database
from dockyard.metadata.webhooks import DeliveryRow

PUBLIC_URL = "https://dockyard.example"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


# --- a receiver that records what it gets ----------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering each path from a script (last answer repeats), or
    else as `check` judges the request (as a receiver that verifies signatures does)."""

    base: str = ""
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    check: Callable[[Received], tuple[int, str]] | None = None

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.path, dict(request.headers), await request.read())
        self.requests.append(received)
        if request.path == "/slow":
            await asyncio.sleep(5)
        if self.check is not None and request.path not in self.script:
            status, text = self.check(received)
            return web.Response(status=status, text=text)
        answers = self.script.get(request.path, [(200, {}, "thanks")])
        status, headers, text = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.Response(status=status, headers=headers, text=text)


# --- the service over a database --------------------------------------------------------------


def service(
    db: Database,
    *,
    allow_private: bool = True,
    timeout: float = 2.0,
    resolve: Resolve | None = None,
    resolver: Callable[[], AbstractResolver] | None = None,
    clock: Callable[[], float] = time.time,
) -> Webhooks:
    """The service; `resolve` answers the check when a webhook is saved, `resolver` makes the
    resolver a delivery's connection uses (the system's by default)."""
    settings = WebhookSettings(PUBLIC_URL, timeout, 3, allow_private)
    extra: dict[str, Any] = {"resolve": resolve} if resolve else {}
    sessions = guarded_sessions(allow_private, resolver)
    return Webhooks(db, JobQueue(db), settings, sessions, clock=clock, **extra)


async def repository(db: Database, name: str = "exampleorg/dhi-python") -> int:
    async with db.write() as conn:
        return (await repositories.create(db, conn, name, None)).id


async def push_event(
    db: Database, repository_id: int, tag: str = "3.13", old: str | None = None, new: str = D1
) -> None:
    async with db.write() as conn:
        await events.record_push(conn, repository_id, tag, old, new, OCI_MANIFEST, "alice")


def job(delivery_id: int, attempts: int = 1, max_attempts: int = 3) -> Job:
    return Job(0, "webhook.deliver", {"delivery_id": delivery_id}, attempts, max_attempts, None)


async def only_delivery(hooks: Webhooks, webhook_id: int) -> DeliveryRow:
    rows = await hooks.deliveries(webhook_id)
    assert len(rows) == 1
    return rows[0]


async def one_delivery(hooks: Webhooks, url: str, secret: str | None = None) -> DeliveryRow:
    """A webhook at `url` and one pushed tag, dispatched: its (pending) delivery."""
    repo = await repository(hooks.db)
    hook = await hooks.create(repo, "ci", url, secret)
    await push_event(hooks.db, repo)
    assert await hooks.dispatch_events() == 1
    return await only_delivery(hooks, hook.id)


@contextlib.asynccontextmanager
async def serving_receiver() -> AsyncIterator[Receiver]:
    """A Receiver listening on 127.0.0.1 (an ephemeral port) until the iterator is closed."""
    recorder = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.base = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


# --- a DNS that answers from a table ---------------------------------------------------------


@dataclass
class Answers:
    """A name server answering from `table`: `lookup` for the check when a webhook is saved,
    `resolver` for a delivery's connection; `asked` counts the lookups of both."""

    table: dict[str, list[str]]
    asked: int = 0

    async def lookup(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return list(self.table[host])

    def resolver(self) -> AbstractResolver:
        return _TableResolver(self)


class _TableResolver(AbstractResolver):
    def __init__(self, answers: Answers) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.answers.lookup(host, port)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in found
        ]

    async def close(self) -> None:
        pass
