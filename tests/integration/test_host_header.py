"""A hostile Host header cannot inject parameters into the `WWW-Authenticate` challenge.

Without `public_url` the challenge's realm is built from the Host the client sent. Over a real
socket (a client library would not send these), a Host with quotes, commas, spaces, non-ASCII
or a second Host header is refused with 400 in the error envelope before any handler reads it;
a host name, an IPv4 or bracketed IPv6 address with a port, and an HTTP/1.0 request without a
Host, still get a challenge whose realm is exactly this server's token endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.peers import DockyardServer, launch_dockyard
from support.peers import _attach_log as attach_log
from support.rawhttp import RawResponse, connect

HOSTILE = [
    b'evil.example", error="invalid_token',
    b'evil.example",realm="http://evil.example',
    b"evil.example, Basic realm=x",
    b"evil.example scope=x",
    b'127.0.0.1:5000"',
    b"\xc3\xa9vil.example",
]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    server = launch_dockyard(tmp_path_factory.mktemp("dockyard-host"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(shared_server: DockyardServer, request: pytest.FixtureRequest) -> DockyardServer:
    attach_log(request, f"dockyard {shared_server.host}", shared_server.log)
    return shared_server


async def get_v2(
    server: DockyardServer, *host_lines: bytes, version: bytes = b"1.1"
) -> RawResponse:
    async with connect(server.port) as conn:
        head = (
            b"GET /v2/ HTTP/"
            + version
            + b"\r\n"
            + b"".join(b"Host: " + host + b"\r\n" for host in host_lines)
        )
        await conn.send(head + b"\r\n")
        return await conn.response("GET /v2/")


async def test_hostile_host_headers_are_refused(server: DockyardServer) -> None:
    for host in HOSTILE:
        response = await get_v2(server, host)
        assert response.status == 400, (host, response)
        error = response.error()
        assert error["code"] == "INVALID_REQUEST", (host, response)
        assert error["detail"] == {"header": "Host"}
        assert "www-authenticate" not in response.headers, (host, response)
    response = await get_v2(server, b"a.example", b"b.example")
    assert response.status == 400, response
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "registry_1.internal"]
)
async def test_valid_hosts_name_the_token_endpoint(server: DockyardServer, host: str) -> None:
    host = host.format(port=server.port)
    response = await get_v2(server, host.encode())
    assert response.status == 401, response
    assert response.headers["www-authenticate"] == [
        f'Bearer realm="http://{host}/token",service="dockyard"'
    ]


async def test_without_a_host_the_realm_is_the_address_it_arrived_at(
    server: DockyardServer,
) -> None:
    response = await get_v2(server, version=b"1.0")
    assert response.status == 401, response
    assert response.headers["www-authenticate"] == [
        f'Bearer realm="http://{server.host}/token",service="dockyard"'
    ]
