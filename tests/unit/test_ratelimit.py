"""The per-client rate limit answers TOOMANYREQUESTS with Retry-After."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp_asgi_connector import ASGIApplicationConnector
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from dockyard.api.ratelimit import RateLimit
from dockyard.app import create_app
from dockyard.auth.limits import HostBuckets
from dockyard.config import Settings
from dockyard.storage.buckets import SharedTable


async def test_requests_past_the_burst_get_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(
        data=tmp_path, admin_password="pw", rate_limit_per_second=0.5, rate_limit_burst=3
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        connector = ASGIApplicationConnector(app)
        async with aiohttp.ClientSession("http://dockyard.test", connector=connector) as client:
            statuses = []
            for _ in range(4):
                async with client.get("/v2/") as resp:
                    statuses.append(resp.status)
                    last_headers, last_body = resp.headers, await resp.read()
    assert statuses == [401, 401, 401, 429]
    assert last_headers["Retry-After"] == "2"
    assert b'"code":"TOOMANYREQUESTS"' in last_body


async def test_workers_sharing_the_table_admit_the_burst_once(tmp_path: Path) -> None:
    """Two middlewares, each with its own mapping of the same file, stand for two workers: a
    worker leases a few tokens at a time, so together they admit at most the burst, and at
    most a lease fewer."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await Response(b"ok")(scope, receive, send)

    workers = [
        RateLimit(
            app, rate=0.001, burst=64, buckets=HostBuckets(SharedTable(tmp_path / "rate-limit"))
        )
        for _ in range(2)
    ]
    statuses = []
    for i in range(200):
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)  # noqa: B023 - used before the next iteration

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v2/",
            "headers": [],
            "client": ("192.0.2.1", 1000 + i),
            "app": None,
        }
        await workers[i % 2](scope, receive, send)
        statuses.append(sent[0]["status"])
    admitted = statuses.count(200)
    assert 64 - workers[0].batch <= admitted <= 64
    assert statuses.count(429) == 200 - admitted
