"""Authorization for one registry: Basic, or Bearer tokens from the registry's token service
(anonymous or with credentials), cached by scope set until they expire."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from dockyard.client.challenge import Challenge, covers, merge_scopes
from dockyard.client.errors import error_from_body
from dockyard.client.responses import read_body
from dockyard.client.retry import Clock
from dockyard.client.settings import Credential
from dockyard.oci.errors import Unauthorized

CLIENT_ID = "dockyard"
# The token spec: a token without expires_in lives 60 s, and none is trusted for less.
MIN_TOKEN_LIFE = 60.0
# Renew a little early, so a token does not expire between sending and the server checking.
EXPIRY_MARGIN = 5.0
MAX_CACHED_TOKENS = 256
MAX_TOKEN_RESPONSE = 1 << 20


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token granted for `scopes`, usable until `expires_at` (on the client's clock)."""

    value: str
    scopes: frozenset[str]
    expires_at: float


class Authenticator:
    """What to put in `Authorization` for a registry, learnt from its challenges.

    Before the first challenge nothing is sent. A Basic challenge makes every later request
    carry the credentials; a Bearer challenge makes each request carry a token for the scopes it
    needs, fetched from the challenge's realm once per scope set and reused until it expires.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credential: Credential | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.session = session
        self.credential = credential
        self.scheme: str | None = None
        self.realm: str | None = None
        self.service: str | None = None
        self._clock = clock
        self._tokens: dict[frozenset[str], Token] = {}
        self._lock = asyncio.Lock()

    async def header(self, scopes: frozenset[str]) -> str | None:
        """The `Authorization` value for a request needing `scopes`, or None to send none."""
        credential = self.credential
        if self.scheme == "basic":
            if credential is not None and credential.has_basic:
                return aiohttp.encode_basic_auth(credential.username, credential.password)
            return None
        if self.scheme == "bearer":
            if credential is not None and credential.registry_token:
                return f"Bearer {credential.registry_token}"
            return f"Bearer {(await self.token(scopes)).value}"
        return None

    def challenged(
        self, challenges: list[Challenge], scopes: frozenset[str], sent: str | None
    ) -> frozenset[str] | None:
        """Learn from a 401's challenges; the scopes to ask for next, or None if asking again
        cannot help (no usable challenge, or Basic credentials that were just refused)."""
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            self.scheme, self.realm = "bearer", bearer.realm
            self.service = bearer.params.get("service")
            if sent is not None and sent.startswith("Bearer "):
                self._forget(sent.removeprefix("Bearer "))
            return merge_scopes(scopes, bearer.scopes)
        if basic is not None:
            self.scheme = "basic"
            credential = self.credential
            if credential is None or not credential.has_basic or (sent or "").startswith("Basic "):
                return None
            return scopes
        return None

    async def token(self, scopes: frozenset[str]) -> Token:
        """An unexpired token covering `scopes`: from the cache, else from the token service."""
        found = self._cached(scopes)
        if found is not None:
            return found
        async with self._lock:
            found = self._cached(scopes)
            if found is None:
                found = await self._fetch(scopes)
                self._store(found)
        return found

    def _cached(self, scopes: frozenset[str]) -> Token | None:
        now = self._clock()
        exact = self._tokens.get(scopes)
        if exact is not None and exact.expires_at > now:
            return exact
        for token in self._tokens.values():
            if token.expires_at > now and covers(token.scopes, scopes):
                return token
        return None

    def _store(self, token: Token) -> None:
        now = self._clock()
        if len(self._tokens) >= MAX_CACHED_TOKENS:
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            while len(self._tokens) >= MAX_CACHED_TOKENS:
                self._tokens.pop(next(iter(self._tokens)))
        self._tokens[token.scopes] = token

    def _forget(self, value: str) -> None:
        self._tokens = {k: t for k, t in self._tokens.items() if t.value != value}

    async def _fetch(self, scopes: frozenset[str]) -> Token:
        """Ask the token service for `scopes`: the OAuth2 refresh-token form when we hold an
        identity token, else GET with Basic credentials (or none, for an anonymous token)."""
        if self.realm is None:
            raise Unauthorized("the registry asked for a bearer token but named no token service")
        credential = self.credential
        sorted_scopes = sorted(scopes)
        if credential is not None and credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "client_id": CLIENT_ID,
                "scope": " ".join(sorted_scopes),
            }
            if self.service:
                form["service"] = self.service
            request = self.session.post(self.realm, data=form)
        else:
            params = [("service", self.service)] if self.service else []
            params += [("scope", scope) for scope in sorted_scopes]
            headers = {}
            if credential is not None and credential.has_basic:
                basic = aiohttp.encode_basic_auth(credential.username, credential.password)
                headers["Authorization"] = basic
            request = self.session.get(self.realm, params=params, headers=headers)
        async with request as response:
            body = await read_body(response, MAX_TOKEN_RESPONSE)
            if response.status != 200:
                raise error_from_body(
                    response.status, body, f"token service {self.realm}", response.headers
                )
        return self._parse(body, scopes)

    def _parse(self, body: bytes, scopes: frozenset[str]) -> Token:
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = None
        value = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise Unauthorized(f"the token service {self.realm} answered without a token")
        expires_in = data.get("expires_in")
        life = float(expires_in) if isinstance(expires_in, int | float) else MIN_TOKEN_LIFE
        life = max(life, MIN_TOKEN_LIFE)
        return Token(value, scopes, self._clock() + life - EXPIRY_MARGIN)
