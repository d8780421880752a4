"""The per-client rate limit answers TOOMANYREQUESTS with Retry-After."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp_asgi_connector import ASGIApplicationConnector

from dockyard.app import create_app
from dockyard.config import Settings


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
