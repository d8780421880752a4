"""Reading response bodies that must be small (manifests, lists, errors, tokens) with a limit."""

from __future__ import annotations

import aiohttp


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response body up to `limit` + 1 bytes (so a caller can tell it was longer)."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)
