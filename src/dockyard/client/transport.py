"""Requests to one registry: authorization from its challenges, retries with backoff, its limits,
and error answers raised as `OciError` classes.

The aiohttp session is injected: the `Client` makes one per registry host (or a test hands in
one that talks to an ASGI app in process). Nothing here is a module global.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from dockyard.client.auth import Authenticator
from dockyard.client.challenge import parse_challenges
from dockyard.client.errors import MAX_ERROR_BODY, error_from_body
from dockyard.client.responses import read_body
from dockyard.client.retry import (
    CONNECTION_ERRORS,
    Clock,
    Limits,
    RetryPolicy,
    Sleep,
    is_retryable_error,
    is_retryable_status,
    parse_retry_after,
)
from dockyard.client.settings import RegistrySettings
from dockyard.oci.errors import OciError

log = logging.getLogger("dockyard.client")

Stream = AsyncIterable[bytes]
Body = bytes | Callable[[], Stream] | Stream | None
"""A request body: bytes and callables that open the stream afresh can be sent again on a
retry; a bare stream is sent once."""
Params = Mapping[str, str] | Sequence[tuple[str, str]]

# A request may meet one challenge for its scopes and one more after widening them.
MAX_AUTH_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Request:
    """One request to send (again, if it fails and its body can be replayed)."""

    method: str
    url: URL
    scopes: frozenset[str] = frozenset()
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Params = ()
    body: Body = None
    retry: bool = True

    @property
    def replayable(self) -> bool:
        return self.body is None or isinstance(self.body, bytes) or callable(self.body)

    def open_body(self) -> bytes | Stream | None:
        body = self.body
        if body is None or isinstance(body, bytes):
            return body
        if callable(body):
            return body()
        return body

    def describe(self) -> str:
        return f"{self.method} {self.url.with_query(None)}"


class Transport:
    """Sends requests to one registry within its limits, authorizing and retrying them."""

    def __init__(
        self,
        settings: RegistrySettings,
        session: aiohttp.ClientSession,
        *,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.session = session
        self.retry = retry or RetryPolicy()
        self.auth = Authenticator(session, settings.credential, clock)
        self.limits = Limits(settings.req_concurrent, settings.req_per_sec, clock, sleep)
        self.base_url = URL(settings.base_url)
        self._sleep = sleep

    def url(self, path: str) -> URL:
        """The absolute URL of `path` (`/v2/...`) on this registry; absolute URLs are kept."""
        url = URL(path)
        return url if url.is_absolute() else self.base_url.join(url)

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        scopes: frozenset[str] = frozenset(),
        headers: Mapping[str, str] | None = None,
        params: Params = (),
        body: Body = None,
        retry: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request and yield its successful (< 400) response, open for reading.

        401s are answered from the registry's challenges; what `is_retryable_error` and
        `is_retryable_status` call transient is retried (when the body can be replayed and
        `retry` is set) after a backoff or the `Retry-After` the registry asked for. Any other
        error answer, or the last one when retries run out, is raised as its `OciError` class;
        connection failures that outlast the retries raise `ConnectionError`. The concurrency
        slot is held until the block ends.
        """
        target = url if isinstance(url, URL) else self.url(url)
        request = Request(method, target, scopes, headers or {}, params, body, retry)
        response = await self._open(request)
        try:
            yield response
        finally:
            _release_now(response)
            self.limits.release()

    async def _open(self, request: Request) -> aiohttp.ClientResponse:
        """The first successful answer to `request`, holding a concurrency slot (the caller
        gives it back with `limits.release()`); every failed attempt gives its slot back."""
        attempts = self.retry.attempts if request.retry and request.replayable else 1
        failures = 0
        while True:
            await self.limits.acquire()
            try:
                response = await self._authorized(request)
            except CONNECTION_ERRORS as exc:
                self.limits.release()
                source = _body_failure(exc)
                if source is not None:
                    raise source from exc  # the body's source failed (e.g. a digest check)
                failures += 1
                if failures >= attempts or not is_retryable_error(exc):
                    raise ConnectionError(
                        f"{request.describe()}: {type(exc).__name__}: {exc} "
                        f"(after {failures} attempt{'s' if failures > 1 else ''})"
                    ) from exc
                await self.backoff(request.describe(), failures, f"{type(exc).__name__}: {exc}")
                continue
            except OciError as err:  # from the token service
                self.limits.release()
                failures += 1
                if failures >= attempts or not is_retryable_status(err.status):
                    raise
                await self.backoff(
                    request.describe(), failures, err.message, err.headers.get("Retry-After")
                )
                continue
            except BaseException:
                self.limits.release()
                raise
            if response.status < 400:
                return response
            try:
                answer = await _read_error(request, response)
            finally:
                self.limits.release()
            failures += 1
            if failures >= attempts or not is_retryable_status(response.status):
                raise answer
            await self.backoff(
                request.describe(), failures, answer.message, response.headers.get("Retry-After")
            )

    async def _authorized(self, request: Request) -> aiohttp.ClientResponse:
        """Send `request`, answering up to MAX_AUTH_ROUNDS challenges; the last answer."""
        scopes = request.scopes
        tried: set[str | None] = set()
        last: aiohttp.ClientResponse | None = None
        for _ in range(MAX_AUTH_ROUNDS):
            try:
                authorization = await self.auth.header(scopes)
            except BaseException:
                if last is not None:
                    _release_now(last)
                raise
            if last is not None:
                if authorization in tried:
                    return last  # asking again with what was refused cannot help
                _release_now(last)
            tried.add(authorization)
            headers = dict(request.headers)
            if authorization is not None:
                headers["Authorization"] = authorization
            response = await self.session.request(
                request.method,
                request.url,
                params=request.params or None,
                headers=headers,
                data=request.open_body(),
            )
            if response.status != 401 or not request.replayable:
                return response
            challenges = parse_challenges(response.headers.getall("WWW-Authenticate", []))
            widened = self.auth.challenged(challenges, scopes, authorization)
            if widened is None:
                return response
            scopes, last = widened, response
        assert last is not None
        return last

    async def backoff(
        self, what: str, failures: int, reason: str, retry_after: str | None = None
    ) -> None:
        """Wait before retrying `what` after its `failures`-th failure: the registry's
        `Retry-After` (then every request to it waits too), else a jittered backoff."""
        asked = parse_retry_after(retry_after)
        delay = self.retry.delay(failures, asked)
        log.info(
            "%s failed (%s); retry %d of %d in %.2f s",
            what,
            reason,
            failures,
            self.retry.attempts - 1,
            delay,
        )
        if asked is not None:
            # the registry is telling every client to wait: hold all requests to it, not just this
            self.limits.pause(delay)
        else:
            await self._sleep(delay)


def _body_failure(exc: BaseException) -> OciError | None:
    """The registry error a request body's own source raised, which aiohttp wraps in a
    connection error: sending the same bytes again would fail the same way."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, OciError):
            return cause
        cause = cause.__cause__
    return None


async def _read_error(request: Request, response: aiohttp.ClientResponse) -> OciError:
    body = b""
    if request.method != "HEAD":
        with contextlib.suppress(*CONNECTION_ERRORS):
            body = await read_body(response, MAX_ERROR_BODY)
    _release_now(response)
    return error_from_body(response.status, body, request.describe(), response.headers)


def _release_now(response: aiohttp.ClientResponse) -> None:
    # release() keeps the connection only when the body was read to the end; otherwise closed
    response.release()
