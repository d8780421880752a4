"""Registry bearer tokens: issuing, verifying (expiry, key, audience, kind) and scope parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dockyard.auth.policy import ANONYMOUS, Action, Role, Scope, Subject
from dockyard.auth.tokens import (
    ACCESS_TTL,
    ISSUER,
    Claims,
    Grant,
    TokenIssuer,
    actions_of,
    new_signing_key,
    parse_scope,
)
from dockyard.oci.errors import Unauthorized

# Keys are slow-ish to make and tests only need two distinct ones.
KEY = new_signing_key()
OTHER_KEY = new_signing_key()

ALICE = Subject(name="alice", user_id=1, roles={"alice": Role.OWNER})
PULL_PUSH = Grant("repository", "acme/app", frozenset({"pull", "push"}))
CATALOG = Grant("registry", "catalog", frozenset({"*"}))


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(KEY, "dockyard")


def payload_of(token: str) -> dict[str, Any]:
    """The unverified claims, to look at what was signed."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def forge(claims: dict[str, Any], key: str = KEY, algorithm: str = "ES256") -> str:
    signing_key = serialization.load_pem_private_key(key.encode(), password=None)
    return jwt.encode(claims, signing_key, algorithm=algorithm)  # type: ignore[arg-type]


def good_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": "dockyard",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 60,
        "kind": "access",
        "access": [PULL_PUSH.to_json()],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# --- issue and verify ------------------------------------------------------------------------


def test_issue_then_verify_round_trips(issuer: TokenIssuer) -> None:
    token, expires_in, issued_at = issuer.issue(ALICE, [PULL_PUSH, CATALOG])
    assert expires_in == ACCESS_TTL
    assert abs(issued_at - time.time()) < 5
    claims = issuer.verify(token)
    assert claims == Claims("alice", None, None, (PULL_PUSH, CATALOG))
    payload = payload_of(token)
    assert payload["iss"] == ISSUER
    assert payload["aud"] == "dockyard"
    assert payload["sub"] == "alice"
    assert payload["exp"] - payload["iat"] == ACCESS_TTL
    assert payload["access"] == [
        {"type": "repository", "name": "acme/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert jwt.get_unverified_header(token)["alg"] == "ES256"


def test_every_token_is_unique(issuer: TokenIssuer) -> None:
    first, _, _ = issuer.issue(ALICE, [PULL_PUSH])
    second, _, _ = issuer.issue(ALICE, [PULL_PUSH])
    assert payload_of(first)["jti"] != payload_of(second)["jti"]


def test_scope_cap_and_org_survive_the_round_trip(issuer: TokenIssuer) -> None:
    personal = Subject(name="alice", user_id=1, scope=Scope.READ)
    claims = issuer.verify(issuer.issue(personal, [])[0])
    assert (claims.subject, claims.scope, claims.org) == ("alice", Scope.READ, None)

    org = Subject(name="acme", roles={"acme": Role.OWNER}, scope=Scope.WRITE, org="acme")
    claims = issuer.verify(issuer.issue(org, [])[0])
    assert (claims.subject, claims.scope, claims.org) == ("acme", Scope.WRITE, "acme")


def test_anonymous_tokens_name_no_subject(issuer: TokenIssuer) -> None:
    token, _, _ = issuer.issue(ANONYMOUS, [Grant("repository", "a/b", frozenset({"pull"}))])
    assert payload_of(token)["sub"] == ""
    assert issuer.verify(token).subject is None


def test_expired_token_is_refused(issuer: TokenIssuer) -> None:
    token, _, _ = issuer.issue(ALICE, [PULL_PUSH], ttl=-1)
    with pytest.raises(Unauthorized, match="expired"):
        issuer.verify(token)


def test_token_not_yet_valid_is_refused(issuer: TokenIssuer) -> None:
    later = int(time.time()) + 600
    with pytest.raises(Unauthorized):
        issuer.verify(forge(good_claims(nbf=later, iat=later, exp=later + 60)))


def test_token_signed_with_another_key_is_refused(issuer: TokenIssuer) -> None:
    token, _, _ = TokenIssuer(OTHER_KEY, "dockyard").issue(ALICE, [PULL_PUSH])
    with pytest.raises(Unauthorized, match="invalid bearer token"):
        issuer.verify(token)


def test_token_for_another_audience_is_refused(issuer: TokenIssuer) -> None:
    token, _, _ = TokenIssuer(KEY, "elsewhere").issue(ALICE, [PULL_PUSH])
    with pytest.raises(Unauthorized, match=r"(?i)audience"):
        issuer.verify(token)
    # and the other service refuses ours
    with pytest.raises(Unauthorized):
        TokenIssuer(KEY, "elsewhere").verify(issuer.issue(ALICE, [])[0])


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"iss": "someone-else"}, id="wrong-issuer"),
        pytest.param({"iss": None}, id="no-issuer"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"exp": "tomorrow"}, id="malformed-expiry"),
    ],
)
def test_tokens_with_bad_registered_claims_are_refused(
    issuer: TokenIssuer, changes: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized):
        issuer.verify(forge(good_claims(**changes)))


def test_a_well_formed_forgery_with_our_key_is_accepted(issuer: TokenIssuer) -> None:
    """Control for the forgery tests: `forge` makes valid tokens when nothing is wrong."""
    assert issuer.verify(forge(good_claims())).access == (PULL_PUSH,)


def test_unsigned_token_is_refused(issuer: TokenIssuer) -> None:
    token = jwt.encode(good_claims(), None, algorithm="none")
    with pytest.raises(Unauthorized):
        issuer.verify(token)


def test_hmac_token_keyed_with_the_public_key_is_refused(issuer: TokenIssuer) -> None:
    """Algorithm confusion: HS256 signed with the (public) verification key."""
    private = serialization.load_pem_private_key(KEY.encode(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = base64.urlsafe_b64encode(json.dumps(good_claims()).encode())
    signing_input = header.rstrip(b"=") + b"." + body.rstrip(b"=")
    signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    with pytest.raises(Unauthorized):
        issuer.verify(token)


def test_tampered_payload_is_refused(issuer: TokenIssuer) -> None:
    token, _, _ = issuer.issue(ALICE, [Grant("repository", "acme/app", frozenset({"pull"}))])
    header, _, signature = token.split(".")
    claims = payload_of(token)
    claims["access"][0]["actions"] = ["pull", "push", "delete"]
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        issuer.verify(f"{header}.{body}.{signature}")


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "Bearer", "eyJhbGciOiJFUzI1NiJ9..."])
def test_garbage_is_refused(issuer: TokenIssuer, garbage: str) -> None:
    with pytest.raises(Unauthorized):
        issuer.verify(garbage)


def test_refresh_and_access_tokens_are_not_interchangeable(issuer: TokenIssuer) -> None:
    refresh, ttl, _ = issuer.issue(ALICE, [], ttl=3600, kind="refresh")
    assert ttl == 3600
    assert issuer.verify(refresh, kind="refresh").subject == "alice"
    with pytest.raises(Unauthorized, match="refresh token cannot be used as a access token"):
        issuer.verify(refresh)
    access, _, _ = issuer.issue(ALICE, [PULL_PUSH])
    with pytest.raises(Unauthorized, match="cannot be used as a refresh token"):
        issuer.verify(access, kind="refresh")


def test_a_token_without_a_kind_is_refused(issuer: TokenIssuer) -> None:
    with pytest.raises(Unauthorized):
        issuer.verify(forge(good_claims(kind=None)))


def test_malformed_access_entries_are_skipped(issuer: TokenIssuer) -> None:
    token = forge(good_claims(access=[PULL_PUSH.to_json(), "repository:x/y:pull", 7]))
    assert issuer.verify(token).access == (PULL_PUSH,)


# --- what a verified token grants ------------------------------------------------------------


def test_claims_grant_only_the_named_repository_and_actions() -> None:
    claims = Claims("alice", None, None, (PULL_PUSH, CATALOG))
    assert claims.grants("repository", "acme/app", "pull")
    assert claims.grants("repository", "acme/app", "push")
    assert not claims.grants("repository", "acme/app", "delete")
    assert not claims.grants("repository", "acme/other", "pull")
    assert not claims.grants("repository", "acme", "pull")
    assert not claims.grants("repository", "acme/app/sub", "pull")
    assert not claims.grants("registry", "acme/app", "pull")
    assert claims.grants("registry", "catalog", "*")
    assert not Claims(None, None, None, ()).grants("repository", "acme/app", "pull")


def test_a_star_grant_covers_every_action() -> None:
    claims = Claims("admin", None, None, (Grant("repository", "a/b", frozenset({"*"})),))
    assert all(claims.grants("repository", "a/b", a.value) for a in Action)


# --- scope parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:a/b:pull", Grant("repository", "a/b", frozenset({"pull"}))),
        ("repository:a/b:pull,push", Grant("repository", "a/b", frozenset({"pull", "push"}))),
        (
            "repository:a/b:pull,push,delete",
            Grant("repository", "a/b", frozenset({"pull", "push", "delete"})),
        ),
        ("repository:a/b:push,pull", Grant("repository", "a/b", frozenset({"pull", "push"}))),
        ("repository:a/b:pull,,push,", Grant("repository", "a/b", frozenset({"pull", "push"}))),
        ("repository:a/b:*", Grant("repository", "a/b", frozenset({"*"}))),
        ("repository:a/b:", Grant("repository", "a/b", frozenset())),
        ("repository:app:pull", Grant("repository", "app", frozenset({"pull"}))),
        ("registry:catalog:*", Grant("registry", "catalog", frozenset({"*"}))),
        # a registry host with a port keeps its colon in the name
        (
            "repository:localhost:5000/team/app:pull",
            Grant("repository", "localhost:5000/team/app", frozenset({"pull"})),
        ),
        (
            "repository:registry.example:443/a:pull,push",
            Grant("repository", "registry.example:443/a", frozenset({"pull", "push"})),
        ),
        # unknown actions are kept as asked (the policy decides what they are worth)
        (
            "repository:a/b:pull,frobnicate",
            Grant("repository", "a/b", frozenset({"pull", "frobnicate"})),
        ),
    ],
)
def test_parse_scope(text: str, expected: Grant) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository",
        "repository:a/b",
        "repository::pull",
        "pull",
        "user:alice:pull",
        "Repository:a/b:pull",
        ":a/b:pull",
        "::",
        "garbage:garbage:garbage",
    ],
)
def test_parse_scope_refuses_garbage(text: str) -> None:
    assert parse_scope(text) is None


def test_grant_json_is_sorted_and_round_trips() -> None:
    grant = Grant("repository", "a/b", frozenset({"push", "delete", "pull"}))
    assert grant.to_json() == {
        "type": "repository",
        "name": "a/b",
        "actions": ["delete", "pull", "push"],
    }


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ({"pull"}, {Action.PULL}),
        ({"pull", "push"}, {Action.PULL, Action.PUSH}),
        ({"delete"}, {Action.DELETE}),
        ({"*"}, set(Action)),
        ({"pull", "*"}, set(Action)),
        ({"frobnicate", "pull"}, {Action.PULL}),
        ({"PULL"}, set()),
        (set(), set()),
    ],
)
def test_actions_of(actions: set[str], expected: set[Action]) -> None:
    assert actions_of(Grant("repository", "a/b", frozenset(actions))) == expected
