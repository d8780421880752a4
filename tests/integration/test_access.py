"""Who may do what, end to end through /v2, on SQLite and PostgreSQL.

The heart of this file is the access matrix: every kind of subject (anonymous, org member, org
owner, the owner's personal tokens, org access tokens, a user of another org, the site admin)
against a public and a private repository of the organization `acme`, for pull, push, delete and
the catalog, with the expected outcome of each written out in `MATRIX` and `CATALOG`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from multidict import CIMultiDict

from dockyard.auth import secrets
from dockyard.auth.policy import Role, Scope, Subject
from dockyard.oci.errors import Denied
from support.inprocess import BASE, Auth, InProcess, basic

ORG = "acme"
OWNER, MEMBER, OUTSIDER = "olivia", "mona", "otto"
PUBLIC, PRIVATE, MISSING = "acme/public", "acme/private", "acme/ghost"
SITE_ADMIN = Subject(name="admin", is_admin=True)
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production argon2 costs ~150 ms a hash; access rules do not depend on its cost."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(secrets, "_hasher", cheap, raising=False)


# --- talking to the registry -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    code: str | None
    message: str | None
    challenge: str | None
    headers: CIMultiDict[str]
    body: Any

    @property
    def outcome(self) -> str:
        """`"200"`, or `"403 DENIED"` for errors: what the matrix compares."""
        return f"{self.status} {self.code}" if self.code else str(self.status)


async def call(
    app: InProcess,
    method: str,
    path: str,
    auth: Auth | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Reply:
    async with app.client.request(
        method, path, data=data, params=params, headers={**(auth or {}), **(headers or {})}
    ) as resp:
        raw = await resp.read()
        body: Any = None
        code = message = None
        if raw and resp.content_type.endswith("json"):
            body = json.loads(raw)
            if resp.status >= 400 and isinstance(body, dict) and body.get("errors"):
                code = body["errors"][0]["code"]
                message = body["errors"][0]["message"]
        if resp.status >= 400 and code is None:
            code = "(no error body)"
        return Reply(
            resp.status,
            code,
            message,
            resp.headers.get("WWW-Authenticate"),
            resp.headers.copy(),
            body,
        )


def challenge(scope: str) -> str:
    return f'Bearer realm="{BASE}/token",service="dockyard",scope="{scope}"'


async def put_manifest(app: InProcess, repo: str, ref: str, raw: bytes, auth: Auth | None) -> Reply:
    return await call(
        app, "PUT", f"/v2/{repo}/manifests/{ref}", auth, raw, {"Content-Type": MANIFEST_TYPE}
    )


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- the world the matrix runs in ------------------------------------------------------------


@dataclass
class World:
    app: InProcess
    subjects: dict[str, Auth]
    digests: dict[str, str]  # repository → digest of its v1 manifest
    manifests: dict[str, bytes]  # repository → bytes of its v1 manifest
    layers: dict[str, str]  # repository → digest of its one layer


async def build_world(app: InProcess) -> World:
    """Org `acme` (owner olivia, member mona), org `other` (owner otto), tokens, two repos."""
    owner = await app.user(OWNER)
    member = await app.user(MEMBER)
    outsider = await app.user(OUTSIDER)
    await app.org(ORG, OWNER, {MEMBER: Role.MEMBER})
    await app.org("other", OUTSIDER)
    subjects: dict[str, Auth] = {
        "anonymous": {},
        "member": member,
        "owner": owner,
        "owner-read-token": await app.token(Scope.READ, user=OWNER),
        "owner-write-token": await app.token(Scope.WRITE, user=OWNER),
        "owner-delete-token": await app.token(Scope.DELETE, user=OWNER),
        "org-read-token": await app.token(Scope.READ, org=ORG),
        "org-write-token": await app.token(Scope.WRITE, org=ORG),
        "outsider": outsider,
        "admin": app.admin,
    }
    digests, manifests, layers = {}, {}, {}
    for repo in (PUBLIC, PRIVATE):
        layer = f"the only layer of {repo}".encode()
        digests[repo], manifests[repo] = await app.push_image(repo, "v1", [layer])
        layers[repo] = sha256(layer)
    await app.state.registry.repositories.configure(SITE_ADMIN, PUBLIC, visibility="public")
    return World(app, subjects, digests, manifests, layers)


# --- the matrix ------------------------------------------------------------------------------

PULLED = "200"
PUSHED = "201"
DELETED = "202"
UNAUTH = "401 UNAUTHORIZED"
DENIED = "403 DENIED"

ACTIONS = ("pull", "push", "delete")

# fmt: off
MATRIX: dict[str, tuple[str, str, str, str, str, str]] = {
    #                      acme/public (public)         acme/private (private)
    #                      pull    push    delete       pull    push    delete
    "anonymous":          (PULLED, UNAUTH, UNAUTH,      UNAUTH, UNAUTH, UNAUTH),
    "member":             (PULLED, PUSHED, DENIED,      PULLED, PUSHED, DENIED),
    "owner":              (PULLED, PUSHED, DELETED,     PULLED, PUSHED, DELETED),
    "owner-read-token":   (PULLED, DENIED, DENIED,      PULLED, DENIED, DENIED),
    "owner-write-token":  (PULLED, PUSHED, DENIED,      PULLED, PUSHED, DENIED),
    "owner-delete-token": (PULLED, PUSHED, DELETED,     PULLED, PUSHED, DELETED),
    "org-read-token":     (PULLED, DENIED, DENIED,      PULLED, DENIED, DENIED),
    "org-write-token":    (PULLED, PUSHED, DENIED,      PULLED, PUSHED, DENIED),
    "outsider":           (PULLED, DENIED, DENIED,      DENIED, DENIED, DENIED),
    "admin":              (PULLED, PUSHED, DELETED,     PULLED, PUSHED, DELETED),
}
# fmt: on
"""Outcome of each action, as `status` or `status CODE`, for every subject and repository."""

BOTH = [PRIVATE, PUBLIC]
CATALOG: dict[str, list[str]] = {
    "anonymous": [PUBLIC],
    "member": BOTH,
    "owner": BOTH,
    "owner-read-token": BOTH,
    "owner-write-token": BOTH,
    "owner-delete-token": BOTH,
    "org-read-token": BOTH,
    "org-write-token": BOTH,
    "outsider": [PUBLIC],
    "admin": BOTH,
}
"""What `GET /v2/_catalog` lists for each subject (always 200)."""

SCOPE_OF = {"pull": "pull", "push": "pull,push", "delete": "delete"}


def expected_table(subject: str) -> dict[tuple[str, str], str]:
    row = MATRIX[subject]
    return {
        (repo, action): row[3 * index + position]
        for index, repo in enumerate((PUBLIC, PRIVATE))
        for position, action in enumerate(ACTIONS)
    }


async def attempt(world: World, repo: str, action: str, auth: Auth) -> tuple[Reply, Reply | None]:
    """Do `action` on `repo`; for a push also start a blob upload (returned second)."""
    app = world.app
    digest = world.digests[PUBLIC if repo == PUBLIC else PRIVATE]
    if action == "pull":
        return await call(app, "GET", f"/v2/{repo}/manifests/v1", auth), None
    if action == "push":
        upload = await call(app, "POST", f"/v2/{repo}/blobs/uploads/", auth)
        raw = world.manifests[PUBLIC if repo == PUBLIC else PRIVATE]
        return await put_manifest(app, repo, "pushed", raw, auth), upload
    assert action == "delete"
    return await call(app, "DELETE", f"/v2/{repo}/manifests/{digest}", auth), None


@pytest.mark.parametrize("subject", list(MATRIX))
async def test_access_matrix(registry_app: InProcess, subject: str) -> None:
    world = await build_world(registry_app)
    auth = world.subjects[subject]
    expected = expected_table(subject)

    catalog = await call(registry_app, "GET", "/v2/_catalog", auth)
    assert (catalog.outcome, catalog.body) == ("200", {"repositories": CATALOG[subject]})

    observed: dict[tuple[str, str], str] = {}
    replies: dict[tuple[str, str], Reply] = {}
    for action in ACTIONS:  # deletes last: they remove what the others use
        for repo in (PUBLIC, PRIVATE):
            reply, upload = await attempt(world, repo, action, auth)
            observed[repo, action] = reply.outcome
            replies[repo, action] = reply
            if upload is not None:
                # starting a blob upload is allowed exactly when pushing a manifest is
                wanted = "202" if expected[repo, action] == PUSHED else expected[repo, action]
                observed[repo, "blob upload"] = upload.outcome
                expected[repo, "blob upload"] = wanted
    assert observed == expected

    for (repo, action), reply in replies.items():
        if reply.status == 401:
            assert reply.challenge == challenge(f"repository:{repo}:{SCOPE_OF[action]}")
        if reply.status in (401, 403):
            assert repo in (reply.message or ""), reply.message

    # an allowed pull returns the manifest that was pushed
    if expected[PRIVATE, "pull"] == PULLED:
        assert replies[PRIVATE, "pull"].headers["Docker-Content-Digest"] == world.digests[PRIVATE]

    # refusals on the private repository are the same as on one that does not exist
    for action in ACTIONS:
        existing = replies[PRIVATE, action]
        if existing.status not in (401, 403):
            continue
        missing, _ = await attempt(world, MISSING, action, auth)
        assert (missing.status, missing.code) == (existing.status, existing.code), action
        assert (missing.message or "").replace(MISSING, PRIVATE) == existing.message
        assert (missing.challenge or "").replace(MISSING, PRIVATE) == (existing.challenge or "")
    assert await registry_app.state.registry.repositories.get(MISSING) is None


def test_the_matrix_covers_every_subject() -> None:
    assert set(MATRIX) == set(CATALOG)
    assert len(MATRIX) == 10


# --- refusals that must not tell a private repository from a missing one ---------------------


def _requests_on(world: World, repo: str) -> Iterator[tuple[str, str]]:
    source = PRIVATE
    blob = world.layers[source]
    yield "GET", f"/v2/{repo}/manifests/v1"
    yield "HEAD", f"/v2/{repo}/manifests/v1"
    yield "GET", f"/v2/{repo}/manifests/{world.digests[source]}"
    yield "GET", f"/v2/{repo}/blobs/{blob}"
    yield "HEAD", f"/v2/{repo}/blobs/{blob}"
    yield "GET", f"/v2/{repo}/tags/list"
    yield "GET", f"/v2/{repo}/referrers/{world.digests[source]}"
    yield "DELETE", f"/v2/{repo}/blobs/{blob}"
    yield "DELETE", f"/v2/{repo}/manifests/v1"
    yield "POST", f"/v2/{repo}/blobs/uploads/"
    yield "PATCH", f"/v2/{repo}/blobs/uploads/0123456789abcdef"
    yield "GET", f"/v2/{repo}/blobs/uploads/0123456789abcdef"


@pytest.mark.parametrize(("subject", "status"), [("anonymous", 401), ("outsider", 403)])
async def test_every_endpoint_answers_a_private_repo_like_a_missing_one(
    registry_app: InProcess, subject: str, status: int
) -> None:
    world = await build_world(registry_app)
    auth = world.subjects[subject]
    pairs = zip(_requests_on(world, PRIVATE), _requests_on(world, MISSING), strict=True)
    for (method, existing_path), (_, missing_path) in pairs:
        existing = await call(registry_app, method, existing_path, auth)
        missing = await call(registry_app, method, missing_path, auth)
        what = f"{method} {existing_path}"
        assert existing.status == status, what
        assert missing.status == existing.status, what
        assert missing.code == existing.code, what
        assert (missing.message or "").replace(MISSING, PRIVATE) == (existing.message or ""), what
        assert (missing.challenge or "").replace(MISSING, PRIVATE) == (existing.challenge or ""), (
            what
        )
        drop = {"Date", "Content-Length", "Server"}
        assert {k: v for k, v in missing.headers.items() if k not in drop}.keys() == {
            k for k in existing.headers if k not in drop
        }, what
    assert await registry_app.state.registry.repositories.get(MISSING) is None


async def test_members_may_not_delete_blobs_either(registry_app: InProcess) -> None:
    world = await build_world(registry_app)
    for subject in ("member", "owner-write-token", "org-write-token"):
        reply = await call(
            registry_app,
            "DELETE",
            f"/v2/{PRIVATE}/blobs/{world.layers[PRIVATE]}",
            world.subjects[subject],
        )
        assert reply.outcome == DENIED, subject
    reply = await call(
        registry_app,
        "DELETE",
        f"/v2/{PRIVATE}/blobs/{world.layers[PRIVATE]}",
        world.subjects["owner-delete-token"],
    )
    assert reply.outcome == "202"


# --- creating repositories by pushing --------------------------------------------------------


async def test_a_repository_created_by_a_push_is_private(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    member = world.subjects["member"]
    digest, _ = await app.push_image("acme/fresh", "v1", auth=member)

    row = await app.state.registry.repositories.get("acme/fresh")
    assert row is not None
    assert row.visibility == "private"
    assert not row.is_public

    path = "/v2/acme/fresh/manifests/v1"
    assert (await call(app, "GET", path)).outcome == UNAUTH
    assert (await call(app, "GET", path, world.subjects["outsider"])).outcome == DENIED
    pulled = await call(app, "GET", path, member)
    assert pulled.outcome == PULLED
    assert pulled.headers["Docker-Content-Digest"] == digest
    assert (await call(app, "GET", path, world.subjects["owner"])).outcome == PULLED
    listed = await call(app, "GET", "/v2/_catalog", world.subjects["outsider"])
    assert "acme/fresh" not in listed.body["repositories"]


async def test_a_repository_is_public_on_request_of_an_owner(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    repositories = app.state.registry.repositories
    await app.push_image("acme/later", "v1", auth=world.subjects["member"])
    path = "/v2/acme/later/manifests/v1"
    assert (await call(app, "GET", path)).outcome == UNAUTH

    # members and tokens that are not delete-scoped cannot change settings
    member = await app.state.accounts.subject(MEMBER)
    with pytest.raises(Denied):
        await repositories.configure(member, "acme/later", visibility="public")
    owner_writer = await app.state.accounts.subject(OWNER, scope=Scope.WRITE)
    with pytest.raises(Denied):
        await repositories.configure(owner_writer, "acme/later", visibility="public")
    assert (await call(app, "GET", path)).outcome == UNAUTH

    owner = await app.state.accounts.subject(OWNER)
    row = await repositories.configure(owner, "acme/later", visibility="public")
    assert row.is_public
    assert (await call(app, "GET", path)).outcome == PULLED
    assert (await call(app, "GET", path, world.subjects["outsider"])).outcome == PULLED
    # public means pull, not push
    raw = json.dumps({"not": "pushed"}).encode()
    assert (await put_manifest(app, "acme/later", "v2", raw, None)).outcome == UNAUTH

    await repositories.configure(owner, "acme/later", visibility="private")
    assert (await call(app, "GET", path)).outcome == UNAUTH


async def test_users_push_to_their_own_namespace_and_not_to_another_users(
    registry_app: InProcess,
) -> None:
    app = registry_app
    alice = await app.user("alice")
    bob = await app.user("bob")
    digest, _ = await app.push_image("alice/app", "v1", auth=alice)
    await app.push_image("alice/deeper/nested/app", "v1", auth=alice)

    assert (await call(app, "GET", "/v2/alice/app/manifests/v1", alice)).outcome == PULLED
    # bob can neither read alice's private repository nor push next to it
    assert (await call(app, "GET", "/v2/alice/app/manifests/v1", bob)).outcome == DENIED
    assert (await call(app, "POST", "/v2/alice/app/blobs/uploads/", bob)).outcome == DENIED
    assert (await call(app, "POST", "/v2/alice/other/blobs/uploads/", bob)).outcome == DENIED
    assert (await call(app, "DELETE", f"/v2/alice/app/manifests/{digest}", bob)).outcome == DENIED
    assert await app.state.registry.repositories.get("alice/other") is None
    # ... and his own namespace is his
    await app.push_image("bob/app", "v1", auth=bob)
    # alice owns her namespace, so she may delete there
    reply = await call(app, "DELETE", f"/v2/alice/app/manifests/{digest}", alice)
    assert reply.outcome == DELETED


async def test_a_user_cannot_push_into_an_org_they_are_not_in(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    raw = world.manifests[PRIVATE]
    for subject in ("outsider", "anonymous"):
        auth = world.subjects[subject]
        expected = UNAUTH if subject == "anonymous" else DENIED
        reply = await call(app, "POST", "/v2/acme/newrepo/blobs/uploads/", auth)
        assert reply.outcome == expected, subject
        assert (await put_manifest(app, "acme/newrepo", "v1", raw, auth)).outcome == expected
    # an org token acts for its own org only
    other_token = await app.token(Scope.WRITE, org="other")
    reply = await call(app, "POST", "/v2/acme/newrepo/blobs/uploads/", other_token)
    assert reply.outcome == DENIED
    assert (await call(app, "POST", "/v2/other/app/blobs/uploads/", other_token)).outcome == "202"
    acme_token = world.subjects["org-write-token"]
    assert (await call(app, "POST", "/v2/other/app/blobs/uploads/", acme_token)).outcome == DENIED
    assert await app.state.registry.repositories.get("acme/newrepo") is None


async def test_pushing_into_a_namespace_that_does_not_exist(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    for subject in ("member", "owner", "owner-delete-token", "org-write-token", "outsider"):
        auth = world.subjects[subject]
        for repo in ("nobody/app", "app"):  # an unknown namespace; no namespace at all
            reply = await call(app, "POST", f"/v2/{repo}/blobs/uploads/", auth)
            assert reply.outcome == DENIED, (subject, repo)
            reply = await put_manifest(app, repo, "v1", world.manifests[PUBLIC], auth)
            assert reply.outcome == DENIED, (subject, repo)
    reply = await call(app, "POST", "/v2/nobody/app/blobs/uploads/")
    assert reply.outcome == UNAUTH
    for repo in ("nobody/app", "app"):
        assert await app.state.registry.repositories.get(repo) is None
    # the site admin may do everything, including this
    await app.push_image("nobody/app", "v1")
    await app.push_image("app", "v1")


# --- credentials -----------------------------------------------------------------------------


BAD_CREDENTIALS = {
    "wrong-password": basic(OWNER, "wrong-password"),
    "unknown-user": basic("nosuchuser", "whatever"),
    "unknown-token": basic(OWNER, secrets.TOKEN_PREFIX + "not-a-real-token"),
    "empty-password": basic(OWNER, ""),
    "malformed-basic": {"Authorization": "Basic !!!not-base64"},
    "basic-without-colon": {"Authorization": "Basic b25seXVzZXI="},
    "garbage-bearer": {"Authorization": "Bearer not-a-jwt"},
    "unknown-scheme": {"Authorization": "Digest username=olivia"},
}


async def test_bad_credentials_are_refused_even_on_a_public_repo(registry_app: InProcess) -> None:
    app = registry_app
    await build_world(app)
    app.state.accounts.throttle = None  # 12 failures for one account: this is not about 429
    assert (await call(app, "GET", f"/v2/{PUBLIC}/manifests/v1")).outcome == PULLED
    for what, credentials in BAD_CREDENTIALS.items():
        reply = await call(app, "GET", f"/v2/{PUBLIC}/manifests/v1", credentials)
        assert reply.outcome == UNAUTH, what
        assert reply.challenge == challenge(f"repository:{PUBLIC}:pull"), what
        reply = await call(app, "HEAD", f"/v2/{PUBLIC}/blobs/{sha256(b'x')}", credentials)
        assert reply.status == 401, what
        assert (await call(app, "GET", "/v2/_catalog", credentials)).outcome == UNAUTH, what
        assert (await call(app, "GET", "/v2/", credentials)).outcome == UNAUTH, what


async def test_a_token_is_bound_to_its_owner_name(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    token = world.subjects["owner-read-token"]["Authorization"]
    secret = decode_basic(token)[1]
    path = f"/v2/{PRIVATE}/manifests/v1"
    # the owner's name or an empty one work, someone else's name does not
    assert (await call(app, "GET", path, basic(OWNER, secret))).outcome == PULLED
    assert (await call(app, "GET", path, basic("", secret))).outcome == PULLED
    assert (await call(app, "GET", path, basic(MEMBER, secret))).outcome == UNAUTH
    org_secret = decode_basic(world.subjects["org-read-token"]["Authorization"])[1]
    assert (await call(app, "GET", path, basic(ORG, org_secret))).outcome == PULLED
    assert (await call(app, "GET", path, basic(OWNER, org_secret))).outcome == UNAUTH


async def test_an_expired_access_token_is_refused(registry_app: InProcess) -> None:
    app = registry_app
    await build_world(app)
    secret = await app.state.accounts.create_token("old", Scope.READ, user=OWNER, expires_in=-1)
    reply = await call(app, "GET", f"/v2/{PUBLIC}/manifests/v1", basic(OWNER, secret))
    assert reply.outcome == UNAUTH


def decode_basic(header: str) -> tuple[str, str]:
    user, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    return user, secret


# --- immutable tags --------------------------------------------------------------------------


async def test_immutable_tags_refuse_a_move_but_allow_the_same_digest(
    registry_app: InProcess,
) -> None:
    app = registry_app
    world = await build_world(app)
    member = world.subjects["member"]
    first, first_raw = await app.push_image("acme/locked", "v1", auth=member)
    owner = await app.state.accounts.subject(OWNER)
    row = await app.state.registry.repositories.configure(owner, "acme/locked", immutable_tags=True)
    assert row.immutable_tags

    # the same manifest again under the same tag: fine (retries, re-runs of CI)
    again = await put_manifest(app, "acme/locked", "v1", first_raw, member)
    assert again.outcome == PUSHED
    assert again.headers["Docker-Content-Digest"] == first

    # a different manifest under the existing tag: refused, naming the setting
    layer = b"a different layer"
    await app.push_blob("acme/locked", layer, member)
    config = await app.push_blob("acme/locked", b'{"architecture":"amd64","os":"linux"}', member)
    other = json.loads(first_raw)
    other["config"]["digest"] = config
    other["config"]["size"] = len(b'{"architecture":"amd64","os":"linux"}')
    other["layers"][0].update(digest=sha256(layer), size=len(layer))
    other_raw = json.dumps(other).encode()
    for who in ("member", "owner", "admin"):
        moved = await put_manifest(app, "acme/locked", "v1", other_raw, world.subjects[who])
        assert moved.outcome == DENIED, who
        assert "immutable" in (moved.message or "").lower(), moved.message
    pulled = await call(app, "GET", "/v2/acme/locked/manifests/v1", member)
    assert pulled.headers["Docker-Content-Digest"] == first
    # nothing of the refused push was kept
    refused = await call(app, "GET", f"/v2/acme/locked/manifests/{sha256(other_raw)}", member)
    assert refused.outcome == "404 MANIFEST_UNKNOWN"

    # ... while new tags and pushes by digest still work
    assert (await put_manifest(app, "acme/locked", "v2", other_raw, member)).outcome == PUSHED
    by_digest = await put_manifest(app, "acme/locked", sha256(other_raw), other_raw, member)
    assert by_digest.outcome == PUSHED
    tags = await call(app, "GET", "/v2/acme/locked/tags/list", member)
    assert tags.body["tags"] == ["v1", "v2"]

    # tags move freely again once the setting is off
    await app.state.registry.repositories.configure(owner, "acme/locked", immutable_tags=False)
    assert (await put_manifest(app, "acme/locked", "v1", other_raw, member)).outcome == PUSHED


async def test_tags_are_mutable_by_default(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    member = world.subjects["member"]
    first, _ = await app.push_image("acme/moving", "latest", [b"one"], auth=member)
    second, _ = await app.push_image("acme/moving", "latest", [b"two"], auth=member)
    assert first != second
    pulled = await call(app, "GET", "/v2/acme/moving/manifests/latest", member)
    assert pulled.headers["Docker-Content-Digest"] == second


# --- cross-repository mount ------------------------------------------------------------------


async def test_mount_from_an_unreadable_repo_falls_back_to_an_upload(
    registry_app: InProcess,
) -> None:
    app = registry_app
    world = await build_world(app)
    outsider = world.subjects["outsider"]
    secret_layer = world.layers[PRIVATE]

    for source in (PRIVATE, MISSING):
        reply = await call(
            app,
            "POST",
            f"/v2/{OUTSIDER}/app/blobs/uploads/",
            outsider,
            params={"mount": secret_layer, "from": source},
        )
        assert reply.outcome == "202", source
        assert reply.headers["Location"].startswith(f"/v2/{OUTSIDER}/app/blobs/uploads/")
        assert "Docker-Content-Digest" not in reply.headers
        leaked = await call(app, "HEAD", f"/v2/{OUTSIDER}/app/blobs/{secret_layer}", outsider)
        assert leaked.status == 404
        got = await call(app, "GET", f"/v2/{OUTSIDER}/app/blobs/{secret_layer}", outsider)
        assert got.outcome == "404 BLOB_UNKNOWN"

    # a readable source mounts (201): the public one for anyone who may push ...
    public_layer = world.layers[PUBLIC]
    reply = await call(
        app,
        "POST",
        f"/v2/{OUTSIDER}/app/blobs/uploads/",
        outsider,
        params={"mount": public_layer, "from": PUBLIC},
    )
    assert reply.outcome == "201"
    assert reply.headers["Docker-Content-Digest"] == public_layer
    assert (
        await call(app, "HEAD", f"/v2/{OUTSIDER}/app/blobs/{public_layer}", outsider)
    ).status == 200

    # ... the private one for a member of its org
    member = world.subjects["member"]
    reply = await call(
        app,
        "POST",
        f"/v2/{MEMBER}/app/blobs/uploads/",
        member,
        params={"mount": secret_layer, "from": PRIVATE},
    )
    assert reply.outcome == "201"
    assert (await call(app, "HEAD", f"/v2/{MEMBER}/app/blobs/{secret_layer}", member)).status == 200


async def test_an_upload_session_belongs_to_its_repository(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    started = await call(app, "POST", f"/v2/{PRIVATE}/blobs/uploads/", world.subjects["member"])
    assert started.outcome == "202"
    session = started.headers["Location"].rsplit("/", 1)[1]
    outsider = world.subjects["outsider"]
    data = b"smuggled"
    # through the repository it belongs to, the outsider is refused like anywhere in acme
    reply = await call(app, "PATCH", f"/v2/{PRIVATE}/blobs/uploads/{session}", outsider, data)
    assert reply.outcome == DENIED
    # through a repository the outsider may push to, the session does not exist
    own = f"/v2/{OUTSIDER}/app/blobs/uploads/{session}"
    await app.push_image(f"{OUTSIDER}/app", "v1", auth=outsider)
    for method, params in [
        ("GET", None),
        ("PATCH", None),
        ("PUT", {"digest": sha256(data)}),
        ("DELETE", None),
    ]:
        reply = await call(app, method, own, outsider, data, params=params)
        assert reply.outcome == "404 BLOB_UPLOAD_UNKNOWN", method
    # and the session is still the member's
    status = await call(
        app, "GET", f"/v2/{PRIVATE}/blobs/uploads/{session}", world.subjects["member"]
    )
    assert status.outcome == "204"


# --- catalog ---------------------------------------------------------------------------------


async def test_catalog_pages_never_name_hidden_repositories(registry_app: InProcess) -> None:
    app = registry_app
    world = await build_world(app)
    owner = await app.state.accounts.subject(OWNER)
    for name, public in [("acme/a", False), ("acme/b", True), ("acme/c", False), ("acme/d", True)]:
        await app.push_image(name, "v1")
        if public:
            await app.state.registry.repositories.configure(owner, name, visibility="public")
    outsider = world.subjects["outsider"]
    pages: list[list[str]] = []
    links: list[str | None] = []
    params = {"n": "1"}
    for _ in range(5):
        reply = await call(app, "GET", "/v2/_catalog", outsider, params=params)
        assert reply.outcome == "200"
        pages.append(reply.body["repositories"])
        links.append(reply.headers.get("Link"))
        if "Link" not in reply.headers:
            break
        params = {"n": "1", "last": pages[-1][-1]}
    assert pages == [["acme/b"], ["acme/d"], [PUBLIC]]
    for link in links:
        assert link is None or all(hidden not in link for hidden in ("acme/a", "acme/c"))
    everything = await call(app, "GET", "/v2/_catalog", world.subjects["member"])
    assert everything.body["repositories"] == [
        "acme/a",
        "acme/b",
        "acme/c",
        "acme/d",
        PRIVATE,
        PUBLIC,
    ]
