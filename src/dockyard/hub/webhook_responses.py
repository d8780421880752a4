"""What a webhook receiver's answer means: delivered, failed for good, or worth another try."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from dockyard.metadata.webhooks import DELIVERED, FAILED

RETRY = "retry"
EXCERPT_BYTES = 1024
MAX_RETRY_AFTER = 3600.0  # a receiver may ask for a pause, not for weeks of silence

__all__ = ["DELIVERED", "FAILED", "RETRY", "Attempt", "judge", "read_excerpt", "retry_after"]


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
    """The verdict on a response: 2xx delivered; 408, 429, 5xx retry; anything else failed.

    Redirects are never followed (the target could lead anywhere), so they fail too.
    """
    if 200 <= status < 300:
        return Attempt(DELIVERED, status, excerpt)
    if 300 <= status < 400:
        where = headers.get("Location", "elsewhere")
        error = f"answered {status}, a redirect to {where}: point the webhook at the final URL"
        return Attempt(FAILED, status, excerpt, error)
    error = f"answered {status}"
    if status in (408, 429) or status >= 500:
        delay = retry_after(headers.get("Retry-After"), now)
        return Attempt(RETRY, status, excerpt, error, delay)
    return Attempt(FAILED, status, excerpt, error)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a Retry-After header asks to wait (delay-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


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
