"""What a webhook receiver's answer means: delivered, failed for good, or worth another try."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from dockyard.client.retry import is_retryable_status, parse_retry_after
from dockyard.metadata.webhooks import DELIVERED, FAILED

RETRY = "retry"
EXCERPT_BYTES = 1024

__all__ = ["DELIVERED", "FAILED", "RETRY", "Attempt", "judge", "read_excerpt"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to: a verdict (DELIVERED, FAILED, RETRY) and what history shows."""

    verdict: str
    response_status: int | None = None
    excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: float | None = None


def judge(status: int, headers: Mapping[str, str], excerpt: str | None, now: float) -> Attempt:
    """The verdict on a response: 2xx delivered; retryable statuses (`is_retryable_status`)
    retry, after the `Retry-After` asked for if any; anything else failed.

    Redirects are never followed (the target could lead anywhere), so they fail too.
    """
    if 200 <= status < 300:
        return Attempt(DELIVERED, status, excerpt)
    if 300 <= status < 400:
        where = headers.get("Location", "elsewhere")
        error = f"answered {status}, a redirect to {where}: point the webhook at the final URL"
        return Attempt(FAILED, status, excerpt, error)
    error = f"answered {status}"
    if is_retryable_status(status):
        delay = parse_retry_after(headers.get("Retry-After"), now)
        return Attempt(RETRY, status, excerpt, error, delay)
    return Attempt(FAILED, status, excerpt, error)


async def read_excerpt(response: aiohttp.ClientResponse) -> str | None:
    """The first EXCERPT_BYTES of the body, as text; None if it cannot be read."""
    data = bytearray()
    try:
        while len(data) < EXCERPT_BYTES:
            chunk = await response.content.read(EXCERPT_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
    return data.decode("utf-8", errors="replace")
