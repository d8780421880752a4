"""Failed sign-ins, throttled per client address, per account and address, and per account.

Every password that has to be checked costs a bucket token of three: the client address's
(one attacker trying many accounts), the pair of account and address's (strict: one attacker
guessing one account), and the account's (loose: many addresses guessing one account). An
access token (256 random bits) cannot be guessed: its failures count against the address
alone, which bounds the database work a flood of them costs. A success gives its tokens
back. An attempt that finds a bucket empty is refused with `429` and `Retry-After` *before*
argon2 runs, so refused guesses cost microseconds, not the argon2 threads everyone's sign-in
waits for. Credentials verified before (and cached) are refused too while their bucket is
empty, or the answer would tell a throttled guesser which guess was right.

So that an attacker elsewhere cannot lock the real user out, an address the account signed in
from recently is let past the address and account buckets: only its own pair bucket counts.
Each address also gets one argon2 check at a time per process; its other attempts wait their
turn without holding an argon2 thread.

The counters are `Buckets` shared by the site (`limits.py`): on one host, tables its workers
map, so that a refused attempt costs no database write (a flood of them would queue behind
pushes on SQLite's one writer); across the nodes of a PostgreSQL site, rows they all see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.auth.limits import Buckets
from dockyard.oci.errors import TooManyRequests
from dockyard.storage.buckets import Limit

KNOWN_ADDRESS_SECONDS = 30 * 86400.0  # how long a sign-in vouches for its address


class LoginThrottled(TooManyRequests):
    """Too many failed sign-ins: answered 429 with `Retry-After`."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


@dataclass(frozen=True)
class ThrottleLimits:
    """How many failed sign-ins each bucket allows at once, and again per `window` seconds;
    None turns that bucket off."""

    per_address: int | None = 30
    per_account_address: int | None = 5
    per_account: int | None = 100
    window: float = 300.0


class LoginThrottle:
    """Admits or refuses a sign-in attempt before its secret is checked (see the module)."""

    def __init__(self, buckets: Buckets, limits: ThrottleLimits | None = None) -> None:
        self.buckets = buckets
        limits = limits or ThrottleLimits()

        def limit(count: int | None) -> Limit | None:
            return None if not count else Limit.per_window(count, limits.window)

        self._window = limits.window
        self._address = limit(limits.per_address)
        self._pair = limit(limits.per_account_address)
        self._account = limit(limits.per_account)
        self._turns: dict[str, _Turn] = {}

    def _buckets(self, username: str | None, address: str) -> list[tuple[str, Limit, str, bool]]:
        """(name, limit, what it counts, whether a known address skips it) for each bucket;
        with no `username` (an access token, which cannot be guessed) the address's alone."""
        buckets: list[tuple[str, Limit | None, str, bool]] = [
            (f"a\0{address}", self._address, f"from {address}", True)
        ]
        if username is not None:
            buckets += [
                (
                    f"p\0{username}\0{address}",
                    self._pair,
                    f"for {username!r} from {address}",
                    False,
                ),
                (f"u\0{username}", self._account, f"for {username!r}", True),
            ]
        return [(k, lim, what, skip) for k, lim, what, skip in buckets if lim is not None]

    async def check(self, username: str | None, address: str, now: float) -> None:
        """Raise `LoginThrottled` if an attempt now would be refused; take nothing.

        For credentials already verified and cached: were they let through while their
        address is refused, a throttled guesser would learn which guess was right."""
        if now - await self.buckets.emptied() >= self._window:
            return  # no bucket was emptied for a window: all have refilled (the common case)
        buckets = self._buckets(username, address)
        wanted = [(name, lim) for name, lim, _, _ in buckets]
        levels = await self.buckets.levels(wanted, now)
        needed = await self._needed(buckets, levels, username, address, now)
        for (_, lim, what, _), tokens, need in zip(buckets, levels, needed, strict=True):
            if need and tokens < 1.0:
                raise _throttled(lim, tokens, what)

    async def admit(self, username: str | None, address: str, now: float) -> None:
        """Take a token from each bucket of this attempt, or raise `LoginThrottled`."""
        buckets = self._buckets(username, address)
        if not buckets:
            return
        wanted = [(name, lim) for name, lim, _, _ in buckets]
        # the known addresses are looked up only when it matters (rarely): when a bucket a
        # known address skips is empty
        levels = await self.buckets.levels(wanted, now)
        needed = await self._needed(buckets, levels, username, address, now)
        refused = await self.buckets.take(wanted, needed, now)
        if refused is not None:
            i, tokens = refused
            _, lim, what, _ = buckets[i]
            raise _throttled(lim, tokens, what)

    async def _needed(
        self,
        buckets: list[tuple[str, Limit, str, bool]],
        levels: list[float],
        username: str | None,
        address: str,
        now: float,
    ) -> list[bool]:
        """Which buckets must hold a token: all but those a known address skips, when one of
        those is empty and the address is known."""
        pairs = zip(buckets, levels, strict=True)
        if any(skip and tokens < 1.0 for (*_, skip), tokens in pairs) and await self.is_known(
            username, address, now
        ):
            return [not skip for *_, skip in buckets]
        return [True] * len(buckets)

    async def succeeded(self, username: str | None, address: str, now: float) -> None:
        """Give back this attempt's tokens (the pair's bucket fills up again) and remember
        the address as one the account signs in from."""
        buckets = self._buckets(username, address)
        await self.buckets.give_back(
            [(name, lim) for name, lim, _, _ in buckets],
            [name.startswith("p\0") for name, *_ in buckets],
            now,
        )
        if username is not None:
            await self.buckets.remember(f"k\0{username}\0{address}", now, KNOWN_ADDRESS_SECONDS)

    async def is_known(self, username: str | None, address: str, now: float) -> bool:
        """Whether `username` signed in from `address` in the last 30 days."""
        if username is None:
            return False
        seen = await self.buckets.seen(f"k\0{username}\0{address}")
        return seen is not None and now - seen < KNOWN_ADDRESS_SECONDS

    @contextlib.asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """Wait until no other check from `address` runs in this process, then hold the turn:
        one address never holds more than one of the argon2 threads."""
        turn = self._turns.get(address)
        if turn is None:
            turn = self._turns[address] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[address]


def _throttled(limit: Limit, tokens: float, what: str) -> LoginThrottled:
    wait = limit.wait(tokens)
    return LoginThrottled(f"too many failed sign-ins {what}; retry in {wait} s", wait)


class _Turn:
    """One address's lock, and how many attempts hold or wait for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
