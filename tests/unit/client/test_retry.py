"""The one retry rule every part of Dockyard uses (client requests, uploads and downloads,
webhook deliveries, jobs): what is retryable, full-jitter backoff, Retry-After in both forms,
capped; and rate limiting with the shared pause."""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.client.retry import (
    Limits,
    RateLimiter,
    RetryPolicy,
    is_retryable_error,
    is_retryable_status,
)
from dockyard.client.retry import parse_retry_after as retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        *[(status, True) for status in (408, 425, 429, 500, 502, 503, 504)],
        *[(status, False) for status in (200, 400, 401, 404, 416, 501, 505, 507, 511, 599)],
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def _connector_error(cls: type[aiohttp.ClientConnectorError], os_error: OSError) -> BaseException:
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    return cls(key, os_error)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientConnectionResetError("reset"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (_connector_error(aiohttp.ClientConnectorError, ConnectionRefusedError(111, "no")), True),
        (aiohttp.ClientPayloadError("cut short"), True),
        (aiohttp.ServerTimeoutError("slow"), True),
        (TimeoutError(), True),
        (_connector_error(aiohttp.ClientConnectorSSLError, ssl.SSLError(1, "handshake")), False),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), False),
        (ConnectionError("GET /v2/: gave up after 5 attempts"), False),  # the transport's own
        (aiohttp.InvalidURL("nope"), False),
        (ValueError("bug"), False),
    ],
)
def test_retryable_errors(error: BaseException, retry: bool) -> None:
    assert is_retryable_error(error) is retry


@given(failures=st.integers(1, 100_000), rand=st.floats(0.0, 1.0))
def test_full_jitter_stays_under_the_capped_exponential(failures: int, rand: float) -> None:
    policy = RetryPolicy(base=0.5, cap=30.0, rand=lambda: rand)
    delay = policy.delay(failures)
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** min(failures - 1, 100))


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert RetryPolicy(base=0.5, cap=30.0, rand=lambda: 0.0).delay(4) == 0.0
    assert RetryPolicy(base=0.5, cap=30.0, rand=lambda: 1.0).delay(4) == 4.0
    assert RetryPolicy(base=0.5, cap=30.0, rand=lambda: 1.0).delay(40) == 30.0


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=60.0, rand=lambda: 0.0)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(1, 3600.0) == 60.0
    assert policy.delay(1, float("inf")) == 60.0
    assert policy.delay(3) == 0.0


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RetryPolicy(attempts=0)


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after("120", NOW) == 120.0
    assert retry_after(" 0 ", NOW) == 0.0
    assert retry_after(email.utils.formatdate(NOW + 30, usegmt=True), NOW) == 30.0
    assert retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    # RFC 9110's obsolete forms, which recipients must accept: RFC 850 and asctime
    assert retry_after("Tuesday, 14-Nov-23 22:13:50 GMT", NOW) == 30.0
    assert retry_after("Tue Nov 14 22:13:50 2023", NOW) == 30.0


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process's local time zone is not UTC (HTTP dates must not be read as local)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        yield
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_a_date_without_a_zone_is_gmt() -> None:
    assert retry_after("Tue Nov 14 22:13:50 2023", NOW) == 30.0
    assert retry_after("Tue, 14 Nov 2023 22:13:50 -0000", NOW) == 30.0


@pytest.mark.parametrize(
    "garbage",
    ["soon", "", "-5", "1.5", "0x10", "²", "١٢", "Wed, 21 Oct 99999 07:28:00 GMT",
     "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 +9999", "12 s"],
)  # fmt: skip
def test_garbage_is_no_retry_after(garbage: str) -> None:
    assert retry_after(garbage, NOW) is None
    assert RetryPolicy(rand=lambda: 1.0).delay(1, retry_after(garbage, NOW)) == 0.5


def test_huge_retry_after_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=120.0)
    for huge in ("9" * 400, "99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"):
        asked = retry_after(huge, NOW)
        assert asked is not None
        assert asked > 120.0
        assert policy.delay(1, asked) == 120.0
    assert retry_after(None, NOW) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_rate_limiter_spaces_requests_evenly() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock, clock.sleep)
    for _ in range(4):
        await limiter.wait()
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1])
    clock.now += 5  # idle time is not banked into a burst
    await limiter.wait()
    await limiter.wait()
    assert clock.slept[-1] == pytest.approx(0.1)


async def test_rate_limiter_queues_concurrent_callers() -> None:
    clock = Clock()
    limiter = RateLimiter(4, clock, clock.sleep)
    await asyncio.gather(*(limiter.wait() for _ in range(3)))
    assert clock.now == pytest.approx(0.5)  # the third start waits for the second's slot


async def test_no_limits_means_no_waiting() -> None:
    clock = Clock()
    limits = Limits(0, 0.0, clock, clock.sleep)
    for _ in range(5):
        async with limits.slot():
            pass
    assert clock.slept == []


async def test_a_pause_holds_every_request() -> None:
    clock = Clock()
    limits = Limits(2, 0.0, clock, clock.sleep)
    limits.pause(3.0)
    async with limits.slot():
        pass
    assert clock.now == pytest.approx(3.0)
    async with limits.slot():
        pass
    assert clock.slept == [3.0]
