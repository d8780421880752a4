"""`dockyard serve --workers 2`: whichever worker answers, a client reads its own writes.

Each worker keeps a short-lived read cache (tags, manifests, repositories, credentials); a
write on one worker voids the other's at once through the host's shared stamp. Every request
here opens a fresh connection, so the two workers take turns answering.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from support.ocilayout import build_image
from support.peers import DockyardServer, DockyardServerFactory

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ROUNDS = 24


def _basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def _request(
    server: DockyardServer, method: str, path: str, **kwargs: Any
) -> tuple[int, CIMultiDict[str], bytes]:
    # a session of its own: a new connection, so any worker may take it
    async with (
        aiohttp.ClientSession(server.url) as session,
        session.request(method, path, **kwargs) as resp,
    ):
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def _push(
    server: DockyardServer, auth: dict[str, str], repo: str, tag: str, seed: str
) -> str:
    image = build_image({"seed": seed})
    for blob in image.blobs():
        status, _, body = await _request(
            server,
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": blob.digest},
            data=blob.data,
            headers={**auth, "Content-Type": "application/octet-stream"},
        )
        assert status == 201, body
    status, _, body = await _request(
        server,
        "PUT",
        f"/v2/{repo}/manifests/{tag}",
        data=image.manifest.data,
        headers={**auth, "Content-Type": MANIFEST},
    )
    assert status == 201, body
    return image.digest


async def _tag_digests(server: DockyardServer, auth: dict[str, str], path: str) -> Counter[str]:
    """How often each digest (or, when refused, each status) was served over ROUNDS GETs."""
    seen: Counter[str] = Counter()
    for _ in range(ROUNDS):
        status, headers, _ = await _request(
            server, "GET", path, headers={**auth, "Accept": MANIFEST}
        )
        seen[headers["Docker-Content-Digest"] if status == 200 else str(status)] += 1
    return seen


@pytest.fixture
def two_workers(dockyard_server_factory: DockyardServerFactory) -> DockyardServer:
    return dockyard_server_factory(args=["--workers", "2"])


@pytest.mark.peers
async def test_writes_on_one_worker_are_read_back_from_every_worker(
    two_workers: DockyardServer,
) -> None:
    server = two_workers
    admin = _basic("admin", server.admin_password)
    first = await _push(server, admin, "admin/app", "v1", "first")
    assert await _tag_digests(server, admin, "/v2/admin/app/manifests/v1") == {first: ROUNDS}
    # both workers now hold v1 → first in their caches; move the tag on one of them
    second = await _push(server, admin, "admin/app", "v1", "second")
    assert await _tag_digests(server, admin, "/v2/admin/app/manifests/v1") == {second: ROUNDS}
    status, _, _ = await _request(
        server, "DELETE", f"/v2/admin/app/manifests/{second}", headers=admin
    )
    assert status == 202
    assert await _tag_digests(server, admin, "/v2/admin/app/manifests/v1") == {"404": ROUNDS}


@pytest.mark.peers
async def test_a_revoked_token_is_refused_by_every_worker(two_workers: DockyardServer) -> None:
    server = two_workers
    admin = _basic("admin", server.admin_password)
    digest = await _push(server, admin, "admin/app", "v1", "token")
    status, _, body = await _request(
        server,
        "POST",
        "/api/v1/users/admin/tokens",
        json={"name": "ci", "scope": "read"},
        headers=admin,
    )
    assert status == 201, body
    token = json.loads(body)
    with_token = _basic("admin", token["secret"])
    path = "/v2/admin/app/manifests/v1"
    assert await _tag_digests(server, with_token, path) == {digest: ROUNDS}
    status, _, _ = await _request(
        server, "DELETE", f"/api/v1/users/admin/tokens/{token['id']}", headers=admin
    )
    assert status == 204
    assert await _tag_digests(server, with_token, path) == {"401": ROUNDS}
