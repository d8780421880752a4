"""/api/v1/repositories: listing what the caller may see, one repository, its settings, and
deleting it; who may do each (in process, on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from dockyard.auth import secrets
from dockyard.auth.policy import Role, Scope, Subject
from support.inprocess import InProcess
from support.manageapi import call, login, refusal

ORG = "acme"
OWNER, MEMBER, OUTSIDER = "olivia", "mona", "otto"
PUBLIC, PRIVATE, OTHER = "acme/public", "acme/team/private", "otto/app"
SITE_ADMIN = Subject(name="admin", is_admin=True)


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch, registry_app: InProcess) -> InProcess:
    """Org acme (owner olivia, member mona), user otto; acme/public (public),
    acme/team/private and otto/app, each with tag v1."""
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    for user in (OWNER, MEMBER, OUTSIDER):
        await registry_app.user(user)
    await registry_app.org(ORG, OWNER, {MEMBER: Role.MEMBER})
    for repository in (PUBLIC, PRIVATE, OTHER):
        await registry_app.push_image(repository, "v1")
    await registry_app.state.registry.repositories.configure(
        SITE_ADMIN, PUBLIC, visibility="public"
    )
    return registry_app


def names(body: Any) -> list[str]:
    return [repository["name"] for repository in body["items"]]


# --- listing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (None, [PUBLIC]),
        (OUTSIDER, [PUBLIC, OTHER]),
        (MEMBER, [PUBLIC, PRIVATE]),
        ("admin", [PUBLIC, PRIVATE, OTHER]),
    ],
)
async def test_the_listing_shows_what_the_caller_may_pull(
    app: InProcess, who: str | None, expected: list[str]
) -> None:
    auth = None if who is None else app.admin if who == "admin" else login(who)
    status, body = await call(app, "GET", "/repositories", auth)
    assert status == 200
    assert names(body) == expected
    assert body["next"] is None


async def test_the_listing_filters_by_namespace_and_pages(app: InProcess) -> None:
    status, body = await call(app, "GET", f"/repositories?namespace={ORG}", app.admin)
    assert (status, names(body)) == (200, [PUBLIC, PRIVATE])
    assert body["items"][1] == {
        "name": PRIVATE,
        "namespace": ORG,
        "visibility": "private",
        "immutable_tags": False,
        "sparse_indexes": "site",
        "els": None,
    }
    seen: list[str] = []
    cursor = ""
    while True:
        _, page = await call(app, "GET", f"/repositories?limit=1{cursor}", app.admin)
        seen += names(page)
        if page["next"] is None:
            break
        assert len(page["items"]) == 1
        cursor = f"&cursor={page['next']}"
    assert seen == [PUBLIC, PRIVATE, OTHER]
    status, body = await call(app, "GET", "/repositories?namespace=Not_A_Name", app.admin)
    assert (status, refusal(body)[0]) == (422, "INVALID_REQUEST")


# --- one repository ----------------------------------------------------------------------------


async def test_get_a_repository_whoever_may_pull(app: InProcess) -> None:
    status, body = await call(app, "GET", f"/repositories/{PUBLIC}")
    assert (status, body["visibility"]) == (200, "public")
    status, body = await call(app, "GET", f"/repositories/{PRIVATE}", login(MEMBER))
    assert (status, body["name"], body["namespace"]) == (200, PRIVATE, ORG)
    status, body = await call(app, "GET", f"/repositories/{PRIVATE}")
    assert (status, refusal(body)[0]) == (401, "UNAUTHORIZED")
    status, body = await call(app, "GET", f"/repositories/{PRIVATE}", login(OUTSIDER))
    assert (status, refusal(body)[0]) == (403, "DENIED")


async def test_a_missing_repository_is_not_revealed_to_outsiders(app: InProcess) -> None:
    status, body = await call(app, "GET", "/repositories/acme/missing", app.admin)
    assert (status, refusal(body)[0]) == (404, "NAME_UNKNOWN")
    status, body = await call(app, "GET", "/repositories/acme/missing", login(OUTSIDER))
    assert (status, refusal(body)[0]) == (403, "DENIED")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/repositories/Acme/App", 404),  # not a repository name: no such path
        (f"/repositories/{PUBLIC}/-/nothing", 404),  # things inside repositories: not a name
        ("/repositories/" + "a" * 300, 422),
    ],
)
async def test_paths_that_name_no_repository(app: InProcess, path: str, status: int) -> None:
    got, body = await call(app, "GET", path, app.admin)
    assert got == status
    assert refusal(body)[0] == ("NOT_FOUND" if status == 404 else "INVALID_REQUEST")


# --- settings ----------------------------------------------------------------------------------


async def test_owners_turn_sparse_indexes_on_off_or_back_to_the_site_setting(
    app: InProcess,
) -> None:
    path = f"/repositories/{PRIVATE}"
    for wanted in ("on", "off", "site"):
        status, body = await call(app, "PATCH", path, login(OWNER), json={"sparse_indexes": wanted})
        assert (status, body["sparse_indexes"]) == (200, wanted)
        assert (await call(app, "GET", path, app.admin))[1]["sparse_indexes"] == wanted
    status, body = await call(app, "PATCH", path, login(OWNER), json={"sparse_indexes": True})
    assert status == 422


async def test_owners_change_visibility_and_immutable_tags(app: InProcess) -> None:
    path = f"/repositories/{PRIVATE}"
    status, body = await call(app, "PATCH", path, login(OWNER), json={"visibility": "public"})
    assert (status, body["visibility"], body["immutable_tags"]) == (200, "public", False)
    assert (await call(app, "GET", path))[0] == 200  # anyone may pull it now
    status, body = await call(app, "PATCH", path, app.admin, json={"immutable_tags": True})
    assert (status, body["visibility"], body["immutable_tags"]) == (200, "public", True)
    # the registry refuses to move its tag now
    async with app.client.put(
        f"/v2/{PRIVATE}/manifests/v1",
        data=(await app.push_image(PRIVATE, "v2"))[1].replace(b"}", b" }", 1),
        headers={**app.admin, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    ) as resp:
        assert resp.status == 403
        assert "immutable" in (await resp.json())["errors"][0]["message"]


async def test_only_owners_and_site_admins_change_settings(app: InProcess) -> None:
    path = f"/repositories/{PRIVATE}"
    change = {"visibility": "public"}
    for auth in (
        login(MEMBER),
        login(OUTSIDER),
        await app.token(Scope.WRITE, user=OWNER),
        await app.token(Scope.READ, org=ORG),
    ):
        status, body = await call(app, "PATCH", path, auth, json=change)
        assert status == 403
        assert refusal(body) == (
            "DENIED",
            f"only owners of {ORG!r} may change repository settings",
        )
    assert (await call(app, "PATCH", path, json=change))[0] == 401
    # an organization token of scope delete acts as an owner
    org_token = await app.token(Scope.DELETE, org=ORG)
    assert (await call(app, "PATCH", path, org_token, json=change))[0] == 200


@pytest.mark.parametrize(
    "change", [{"visibility": "internal"}, {"immutable_tags": "sometimes"}, {"name": "x"}]
)
async def test_invalid_settings_answer_422(app: InProcess, change: dict[str, Any]) -> None:
    status, body = await call(app, "PATCH", f"/repositories/{PRIVATE}", app.admin, json=change)
    assert status == 422
    assert body["errors"][0]["code"] == "INVALID_REQUEST"
    assert body["errors"][0]["detail"]["field"].startswith("body.")


async def test_settings_of_a_missing_repository(app: InProcess) -> None:
    status, body = await call(
        app, "PATCH", "/repositories/acme/missing", login(OWNER), json={"visibility": "public"}
    )
    assert (status, refusal(body)[0]) == (404, "NAME_UNKNOWN")


# --- deleting ----------------------------------------------------------------------------------


async def test_owners_delete_a_repository_and_its_content(app: InProcess) -> None:
    status, body = await call(app, "DELETE", f"/repositories/{PRIVATE}", login(OWNER))
    assert (status, body) == (204, None)
    status, body = await call(app, "GET", f"/repositories/{PRIVATE}", app.admin)
    assert (status, refusal(body)[0]) == (404, "NAME_UNKNOWN")
    async with app.client.get(f"/v2/{PRIVATE}/manifests/v1", headers=app.admin) as resp:
        assert resp.status == 404
    # the name can be pushed to again, and starts empty
    await app.push_image(PRIVATE, "v9")
    async with app.client.get(f"/v2/{PRIVATE}/tags/list", headers=app.admin) as resp:
        assert (await resp.json())["tags"] == ["v9"]


async def test_only_owners_and_site_admins_delete(app: InProcess) -> None:
    path = f"/repositories/{PRIVATE}"
    for auth in (login(MEMBER), login(OUTSIDER), await app.token(Scope.WRITE, user=OWNER)):
        status, body = await call(app, "DELETE", path, auth)
        assert (status, refusal(body)[0]) == (403, "DENIED")
    assert (await call(app, "DELETE", path))[0] == 401
    assert (await call(app, "DELETE", f"/repositories/{OTHER}", app.admin))[0] == 204
    status, body = await call(app, "DELETE", f"/repositories/{OTHER}", app.admin)
    assert (status, refusal(body)[0]) == (404, "NAME_UNKNOWN")
    # a one-part name has no namespace owner: site admins only
    await app.push_image("solo", "v1")
    status, body = await call(app, "DELETE", "/repositories/solo", login(OWNER))
    assert (status, refusal(body)[0]) == (403, "DENIED")
