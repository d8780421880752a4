"""Upload sessions live in storage only: any node sharing the storage continues them, and a
session belongs to the repository it was started in."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from dockyard.registry.gc import expire_uploads
from support.inprocess import InProcess, running_app

OCTET = {"Content-Type": "application/octet-stream"}


async def _start(app: InProcess, repo: str) -> str:
    async with app.client.post(f"/v2/{repo}/blobs/uploads/", headers=app.admin) as resp:
        assert resp.status == 202
        location: str = resp.headers["Location"]
    return location


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.peers)])
async def test_a_session_started_on_one_node_completes_on_another(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_database_url") if backend == "postgres" else None
    if url is None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    data = tmp_path / "data"
    blob = b"first half|second half"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    async with running_app(data, url) as one, running_app(data, url) as two:
        await one.push_blob("nodes/app", b"the repository exists on both nodes")
        location = await _start(one, "nodes/app")
        async with one.client.patch(
            location, data=blob[:11], headers={**one.admin, **OCTET}
        ) as resp:
            assert resp.status == 202
        async with two.client.get(location, headers=two.admin) as resp:
            assert resp.status == 204
            assert resp.headers["Range"] == "0-10"
        async with two.client.put(
            location,
            params={"digest": digest},
            data=blob[11:],
            headers={**two.admin, **OCTET, "Content-Range": f"11-{len(blob) - 1}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
        for node in (one, two):
            async with node.client.get(f"/v2/nodes/app/blobs/{digest}", headers=node.admin) as r:
                assert r.status == 200
                assert await r.read() == blob
        # the session is gone for both
        async with one.client.get(location, headers=one.admin) as resp:
            assert resp.status == 404
            assert (await resp.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


async def test_a_session_is_unknown_in_any_other_repository(sqlite_app: InProcess) -> None:
    app = sqlite_app
    await app.push_blob("owner/b", b"b exists")
    location = await _start(app, "owner/a")
    upload_id = location.rsplit("/", 1)[1]
    elsewhere = f"/v2/owner/b/blobs/uploads/{upload_id}"
    for method in ("GET", "PATCH", "DELETE"):
        async with app.client.request(method, elsewhere, headers=app.admin) as resp:
            assert resp.status == 404, method
            body = await resp.json()
            assert body["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
            assert "'owner/b'" in body["errors"][0]["message"]
    async with app.client.get(location, headers=app.admin) as resp:
        assert resp.status == 204  # untouched in its own repository


async def test_an_expired_session_is_not_brought_back_by_its_chunks(sqlite_app: InProcess) -> None:
    app = sqlite_app
    location = await _start(app, "owner/late")
    store = app.state.registry.store
    assert await expire_uploads(store, time.time() + 1) == 1
    blob = b"arrives too late"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    requests = (
        ("PATCH", {}),
        ("PUT", {"digest": digest}),
    )
    for method, params in requests:
        async with app.client.request(
            method, location, params=params, data=blob, headers={**app.admin, **OCTET}
        ) as resp:
            assert resp.status == 404, method
            assert (await resp.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert [upload async for upload, _ in store.uploads.sessions()] == []
