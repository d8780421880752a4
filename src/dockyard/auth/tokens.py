"""Registry bearer tokens (Docker token auth): short-lived ES256 JWTs naming granted access."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.policy import Action, Scope, Subject
from dockyard.oci.errors import Unauthorized

ISSUER = "dockyard"
ACCESS_TTL = 300
REFRESH_TTL = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Grant:
    """One entry of a token's `access` claim: `repository:NAME:ACTIONS` or `registry:catalog:*`."""

    type: str
    name: str
    actions: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who it was issued to and what it grants."""

    subject: str | None
    scope: Scope | None
    org: str | None
    access: tuple[Grant, ...]
    token_id: int | None = None
    # a refresh token of a password sign-in: a digest of the password hash it was issued under
    password_stamp: str | None = None

    def grants(self, type_: str, name: str, action: str) -> bool:
        return any(
            g.type == type_ and g.name == name and (action in g.actions or "*" in g.actions)
            for g in self.access
        )


def new_signing_key() -> str:
    """A fresh P-256 private key as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def parse_scope(text: str) -> Grant | None:
    """`repository:NAME:pull,push` → Grant; None for forms this registry does not know."""
    parts = text.split(":")
    if len(parts) < 3:
        return None
    type_, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])  # names with a registry port keep their colon
    if type_ not in ("repository", "registry") or not name:
        return None
    return Grant(type_, name, frozenset(a for a in actions.split(",") if a))


class TokenIssuer:
    """Signs and verifies registry tokens with one key shared by every node."""

    def __init__(self, private_key_pem: str, service: str) -> None:
        self._key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        self._public = self._key.public_key()
        self.service = service

    def issue(
        self,
        subject: Subject,
        access: list[Grant],
        ttl: int = ACCESS_TTL,
        kind: str = "access",
        password_stamp: str | None = None,
    ) -> tuple[str, int, float]:
        """A signed token; returns (token, expires_in, issued_at). `password_stamp` ties a
        refresh token to the password it was earned with (see `Accounts.password_stamp`)."""
        now = time.time()
        if subject.token_expires_at is not None:
            ttl = max(0, min(ttl, int(subject.token_expires_at - now)))
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": subject.name or "",
            "aud": self.service,
            "iat": int(now),
            "nbf": int(now) - 5,
            "exp": int(now) + ttl,
            "jti": secrets.token_hex(12),
            "kind": kind,
            "access": [g.to_json() for g in access],
        }
        if subject.scope:
            claims["scope_cap"] = subject.scope.value
        if subject.org:
            claims["org"] = subject.org
        if subject.token_id is not None:
            claims["tid"] = subject.token_id
        if password_stamp is not None:
            claims["pwd"] = password_stamp
        return jwt.encode(claims, self._key, algorithm="ES256"), ttl, now  # type: ignore[arg-type]

    def verify(self, token: str, kind: str = "access") -> Claims:
        """The token's claims; `Unauthorized` when it is forged, expired or of another kind."""
        try:
            data = jwt.decode(
                token,
                self._public,  # type: ignore[arg-type]
                algorithms=["ES256"],
                audience=self.service,
                issuer=ISSUER,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid bearer token: {exc}") from exc
        if data.get("kind") != kind:
            raise Unauthorized(f"a {data.get('kind')} token cannot be used as a {kind} token")
        grants = tuple(
            Grant(str(a.get("type")), str(a.get("name")), frozenset(map(str, a.get("actions", []))))
            for a in data.get("access", [])
            if isinstance(a, dict)
        )
        cap = data.get("scope_cap")
        tid = data.get("tid")
        stamp = data.get("pwd")
        return Claims(
            data.get("sub") or None,
            Scope(cap) if cap else None,
            data.get("org"),
            grants,
            tid if isinstance(tid, int) else None,
            stamp if isinstance(stamp, str) else None,
        )


def actions_of(grant: Grant) -> set[Action]:
    """The registry actions a grant asks for (`*` is every action)."""
    if "*" in grant.actions:
        return set(Action)
    return {Action(a) for a in grant.actions if a in Action._value2member_map_}
