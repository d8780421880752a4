"""Bodies the server reads whole are bounded before they are read, over a real socket.

POST /token reads at most `TOKEN_FORM_LIMIT` (8 KiB), /api/v1 at most `api_body_limit_bytes`
(64 KiB on this module's server, 1 MiB by default) and only after a route that needs a
signed-in caller has one, and a manifest at most 4 MiB. A Content-Length past the limit is
answered (413 in the error envelope) as soon as the headers arrive: each test sends the head
and a little of the body, and the answer must come without the rest. A chunked body is
answered as soon as it runs past the limit, without its last chunk. Requests within the
limits work as before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from dockyard.api.token import TOKEN_FORM_LIMIT
from dockyard.oci.manifest import MAX_MANIFEST_SIZE
from support.peers import DockyardServer, launch_dockyard
from support.peers import _attach_log as attach_log
from support.rawhttp import RawConnection, RawResponse, chunk, connect, request_head

API_LIMIT = 64 * 1024
HUGE = 256 * 1024 * 1024
FORM = "Content-Type: application/x-www-form-urlencoded"
JSON = "Content-Type: application/json"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    server = launch_dockyard(
        tmp_path_factory.mktemp("dockyard-limits"),
        env={"DOCKYARD_API_BODY_LIMIT_BYTES": str(API_LIMIT)},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(shared_server: DockyardServer, request: pytest.FixtureRequest) -> DockyardServer:
    attach_log(request, f"dockyard {shared_server.host}", shared_server.log)
    return shared_server


def admin(server: DockyardServer) -> str:
    pair = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    return f"Authorization: Basic {pair}"


async def announced(
    server: DockyardServer, method: str, path: str, length: int, *headers: str
) -> RawResponse:
    """Announce a `length`-byte body, send 1 KiB of it, and read the answer."""
    async with connect(server.port) as conn:
        head = request_head(method, path, server.host, *headers, f"Content-Length: {length}")
        await conn.send(head + b"a" * 1024)
        response = await conn.response(f"{method} {path} announcing {length} bytes")
        assert await conn.closed(), "the connection stays open with the body unread"
        return response


async def chunked_past(
    server: DockyardServer, method: str, path: str, limit: int, *headers: str
) -> RawResponse:
    """Send a chunked body 4 KiB past `limit`, without its last chunk, and read the answer."""
    async with connect(server.port) as conn:
        await conn.send(
            request_head(method, path, server.host, *headers, "Transfer-Encoding: chunked")
        )
        sent = 0
        while sent <= limit + 4096:
            piece = b"b" * min(64 * 1024, limit + 4096 - sent + 1)
            await conn.send(chunk(piece))
            sent += len(piece)
        response = await conn.response(f"a chunked {method} {path} of {sent} bytes, unfinished")
        assert await conn.closed(), "the connection stays open with the body unread"
        return response


async def exchange(
    conn: RawConnection, server: DockyardServer, method: str, path: str, body: bytes, *headers: str
) -> RawResponse:
    head = request_head(method, path, server.host, *headers, f"Content-Length: {len(body)}")
    await conn.send(head + body)
    return await conn.response(f"{method} {path}")


def too_large(response: RawResponse) -> None:
    assert response.status == 413, response
    assert response.error()["code"] == "SIZE_INVALID", response


# --- POST /token ------------------------------------------------------------------------------


async def test_token_form_announced_past_the_limit_is_refused_unread(
    server: DockyardServer,
) -> None:
    too_large(await announced(server, "POST", "/token", HUGE, FORM))


async def test_chunked_token_form_past_the_limit_is_refused(server: DockyardServer) -> None:
    too_large(await chunked_past(server, "POST", "/token", TOKEN_FORM_LIMIT, FORM))


async def test_token_forms_up_to_the_limit_still_work(server: DockyardServer) -> None:
    form = urlencode(
        {
            "grant_type": "password",
            "username": "admin",
            "password": server.admin_password,
            "scope": "repository:a/b:pull",
        }
    )
    padded = form + "&pad=" + "x" * (TOKEN_FORM_LIMIT - len(form) - len("&pad="))
    assert len(padded) == TOKEN_FORM_LIMIT
    async with connect(server.port) as conn:
        response = await exchange(conn, server, "POST", "/token", padded.encode(), FORM)
        assert response.status == 200, response
        assert json.loads(response.body)["access_token"]
        # the same connection serves the next request: nothing was left unread
        response = await exchange(conn, server, "POST", "/token", (padded + "x").encode(), FORM)
        too_large(response)


# --- /api/v1 ----------------------------------------------------------------------------------


async def test_api_refuses_an_anonymous_caller_before_reading_the_body(
    server: DockyardServer,
) -> None:
    response = await announced(server, "POST", "/api/v1/orgs", HUGE, JSON)
    assert response.status == 401, response
    assert response.error()["code"] == "UNAUTHORIZED"
    assert response.header("www-authenticate")


async def test_api_body_announced_past_the_limit_is_refused_unread(
    server: DockyardServer,
) -> None:
    too_large(await announced(server, "POST", "/api/v1/orgs", HUGE, JSON, admin(server)))
    # an operation open to anyone (the catalog's hook; its URL is the credential) reads none
    response = await announced(server, "POST", "/api/v1/catalog/hooks/nosuchtoken", HUGE, JSON)
    assert response.status == 404, response


async def test_chunked_api_body_past_the_limit_is_refused(server: DockyardServer) -> None:
    too_large(await chunked_past(server, "POST", "/api/v1/orgs", API_LIMIT, JSON, admin(server)))


async def test_api_bodies_up_to_the_limit_still_work(server: DockyardServer) -> None:
    body = json.dumps({"name": "limits"}).encode()
    padded = body[:-1] + b" " * (API_LIMIT - len(body)) + b"}"
    assert len(padded) == API_LIMIT
    async with connect(server.port) as conn:
        response = await exchange(conn, server, "POST", "/api/v1/orgs", padded, JSON, admin(server))
        assert response.status == 201, response
        assert json.loads(response.body)["name"] == "limits"
        response = await exchange(
            conn, server, "POST", "/api/v1/orgs", padded + b" ", JSON, admin(server)
        )
        too_large(response)


# --- manifests keep their 4 MiB ---------------------------------------------------------------


async def test_manifest_past_four_mib_is_refused_both_ways(server: DockyardServer) -> None:
    path = "/v2/admin/limits/manifests/latest"
    kind = "Content-Type: application/vnd.oci.image.manifest.v1+json"
    too_large(await announced(server, "PUT", path, HUGE, kind, admin(server)))
    too_large(await chunked_past(server, "PUT", path, MAX_MANIFEST_SIZE, kind, admin(server)))
