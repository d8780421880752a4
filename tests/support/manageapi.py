"""Calling the management API of an in-process Dockyard, for the /api/v1 tests."""

from __future__ import annotations

from typing import Any

from support.inprocess import Auth, InProcess, basic

API = "/api/v1"


def login(user: str) -> Auth:
    return basic(user, f"{user}-password")  # the password InProcess.user gives


async def call(
    app: InProcess, method: str, path: str, auth: Auth | None = None, **kwargs: Any
) -> tuple[int, Any]:
    """(status, JSON body or None) of one request to the management API."""
    async with app.client.request(method, f"{API}{path}", headers=auth or {}, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


def refusal(body: Any) -> tuple[str, str]:
    """(code, message) of a one-error envelope."""
    assert set(body) == {"errors"}
    [entry] = body["errors"]
    return entry["code"], entry["message"]
