"""The management API's framework: mounting, sign-in, the error envelope, validation,
pagination and the OpenAPI document (in process, on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from multidict import CIMultiDictProxy

from dockyard.auth import secrets
from dockyard.auth.policy import Scope
from support.inprocess import BASE, Auth, InProcess, basic

API = "/api/v1"
CHALLENGE = f'Bearer realm="{BASE}/token",service="dockyard"'


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch, registry_app: InProcess) -> InProcess:
    """Production argon2 costs ~150 ms a hash; nothing here depends on its cost."""
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    return registry_app


async def call(
    app: InProcess, method: str, path: str, auth: Auth | None = None, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """(status, JSON body or None, headers) of one request to the management API."""
    async with app.client.request(method, path, headers=auth or {}, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body, resp.headers


def only_error(body: Any) -> dict[str, Any]:
    """The one entry of an error envelope, checked for shape."""
    assert set(body) == {"errors"}
    assert len(body["errors"]) == 1
    entry: dict[str, Any] = body["errors"][0]
    assert {"code", "message"} <= set(entry) <= {"code", "message", "detail"}
    return entry


# --- signing in --------------------------------------------------------------------------------


async def test_anonymous_callers_are_asked_to_sign_in(app: InProcess) -> None:
    status, body, headers = await call(app, "GET", f"{API}/orgs")
    assert status == 401
    assert headers["WWW-Authenticate"] == CHALLENGE
    entry = only_error(body)
    assert entry["code"] == "UNAUTHORIZED"
    assert "sign in" in entry["message"]


async def test_wrong_credentials_are_refused_not_ignored(app: InProcess) -> None:
    status, body, headers = await call(app, "GET", f"{API}/repositories", basic("admin", "wrong"))
    assert status == 401
    assert headers["WWW-Authenticate"] == CHALLENGE
    assert only_error(body)["code"] == "UNAUTHORIZED"
    status, body, _ = await call(app, "GET", f"{API}/orgs", {"Authorization": "Digest x"})
    assert status == 401
    assert "Basic or Bearer" in only_error(body)["message"]


async def test_basic_with_password_or_token_and_bearer_from_the_token_endpoint(
    app: InProcess,
) -> None:
    olivia = await app.user("olivia")
    token = await app.token(Scope.READ, user="olivia")
    async with app.client.get("/token", params={"service": "dockyard"}, headers=olivia) as resp:
        bearer = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    for auth in (olivia, token, bearer):
        status, body, _ = await call(app, "GET", f"{API}/users/olivia", auth)
        assert status == 200, body
        assert body["name"] == "olivia"
    status, body, _ = await call(app, "GET", f"{API}/users/olivia", {"Authorization": "Bearer x"})
    assert status == 401
    assert only_error(body)["code"] == "UNAUTHORIZED"


# --- errors ------------------------------------------------------------------------------------


async def test_unknown_paths_and_methods_answer_in_the_envelope(app: InProcess) -> None:
    status, body, _ = await call(app, "GET", f"{API}/nothing-here", app.admin)
    assert status == 404
    assert only_error(body)["code"] == "NOT_FOUND"
    status, body, _ = await call(app, "GET", f"{API}/orgs/", app.admin)  # no redirects
    assert status == 404
    assert only_error(body)["code"] == "NOT_FOUND"
    status, body, _ = await call(app, "PATCH", f"{API}/orgs", app.admin)
    assert status == 405
    assert only_error(body)["code"] == "UNSUPPORTED"


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"json": {"name": "acme", "extra": 1}}, "body.extra"),
        ({"json": {"name": "Not A Name"}}, "body.name"),
        ({"json": {}}, "body.name"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ({"data": b"\xff\xfe\xfd", "headers": {"Content-Type": "application/json"}}, "body"),
    ],
)
async def test_invalid_bodies_answer_422_naming_the_field(
    app: InProcess, request_kwargs: dict[str, Any], field: str
) -> None:
    headers = {**app.admin, **request_kwargs.pop("headers", {})}
    async with app.client.post(f"{API}/orgs", headers=headers, **request_kwargs) as resp:
        assert resp.status == 422
        body = await resp.json()
    assert set(body) == {"errors"}
    entries = body["errors"]
    assert all(entry["code"] == "INVALID_REQUEST" for entry in entries)
    assert any(entry["detail"]["field"].startswith(field) for entry in entries), entries


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "query.limit"),
        ("limit=101", "query.limit"),
        ("limit=ten", "query.limit"),
        ("cursor=not-a-cursor", "query.cursor"),
        ("cursor=MQ", "query.cursor"),  # a token listing's cursor (an id), not a name
    ],
)
async def test_bad_paging_parameters_answer_422(app: InProcess, query: str, field: str) -> None:
    status, body, _ = await call(app, "GET", f"{API}/orgs?{query}", app.admin)
    assert status == 422
    entry = only_error(body)
    assert entry["code"] == "INVALID_REQUEST"
    assert entry["detail"]["field"] == field


# --- pagination --------------------------------------------------------------------------------


async def test_pages_follow_one_another_by_cursor_and_link(app: InProcess) -> None:
    names = [f"org{i}" for i in range(5)]
    for name in reversed(names):
        status, _, _ = await call(app, "POST", f"{API}/orgs", app.admin, json={"name": name})
        assert status == 201

    seen: list[str] = []
    url: str | None = f"{API}/orgs?limit=2"
    pages = 0
    while url is not None:
        status, body, headers = await call(app, "GET", url, app.admin)
        assert status == 200
        assert set(body) == {"items", "next"}
        seen += [org["name"] for org in body["items"]]
        pages += 1
        if body["next"] is None:
            assert "Link" not in headers
            url = None
            continue
        link = headers["Link"]
        assert link.endswith('>; rel="next"')
        url = link[1 : link.index(">")]
        assert url.startswith(f"{API}/orgs?")
        assert f"cursor={body['next']}" in url
        assert "limit=2" in url
    assert seen == names
    assert pages == 3

    # the cursor works on its own, with another limit
    _, first, _ = await call(app, "GET", f"{API}/orgs?limit=1", app.admin)
    _, rest, _ = await call(app, "GET", f"{API}/orgs?cursor={first['next']}", app.admin)
    assert [org["name"] for org in rest["items"]] == names[1:]
    assert rest["next"] is None


async def test_a_full_last_page_has_no_next(app: InProcess) -> None:
    for name in ("a1", "a2"):
        await call(app, "POST", f"{API}/orgs", app.admin, json={"name": name})
    status, body, headers = await call(app, "GET", f"{API}/orgs?limit=2", app.admin)
    assert status == 200
    assert [org["name"] for org in body["items"]] == ["a1", "a2"]
    assert body["next"] is None
    assert "Link" not in headers


# --- the document ------------------------------------------------------------------------------


async def test_the_openapi_document_lists_every_error_with_the_envelope(app: InProcess) -> None:
    status, document, _ = await call(app, "GET", f"{API}/openapi.json")
    assert status == 200
    assert document["servers"] == [{"url": API}]
    assert set(document["components"]["securitySchemes"]) == {"basic", "bearer"}
    envelope = {"$ref": "#/components/schemas/ErrorBody"}
    operation_ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation_ids.append(operation["operationId"])
            responses = operation["responses"]
            errors = {code for code in responses if code.startswith("4")}
            assert "422" in errors, (method, path)
            if "{" in path:
                assert "404" in errors, (method, path)
            for code in errors:
                assert responses[code]["content"]["application/json"]["schema"] == envelope
            if operation.get("security") == [{}]:  # a secret URL is the credential
                assert "401" not in errors, (method, path)
                continue
            assert "401" in errors, (method, path)
            assert "WWW-Authenticate" in responses["401"]["headers"]
    assert len(operation_ids) == len(set(operation_ids))
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_the_docs_page_is_served(app: InProcess) -> None:
    async with app.client.get(f"{API}/docs") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert f"{API}/openapi.json" in await resp.text()
