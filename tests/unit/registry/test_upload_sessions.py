"""Upload sessions live in storage only: any node sharing the storage continues them, and a
session belongs to the repository it was started in."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUploadUnknown, RangeInvalid
from dockyard.registry.gc import expire_uploads
from dockyard.storage.blobs import BlobStore
from dockyard.storage.paths import UploadRef
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


async def _slowly(data: bytes, pieces: int, pause: float) -> AsyncIterator[bytes]:
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        await asyncio.sleep(pause)
        yield data[start : start + step]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_session_has_one_writer_across_nodes(tmp_path: Path) -> None:
    """Chunks sent to another node while one completes the session never reach its blob."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    data = tmp_path / "data"
    blob = os.urandom(6 * 1024 * 1024)
    digest = Digest.parse("sha256:" + hashlib.sha256(blob).hexdigest())
    async with running_app(data, url) as one, running_app(data, url) as two:
        await one.push_blob("race/app", b"the repository exists")
        repo_one = await one.state.registry.repositories.get("race/app")
        repo_two = await two.state.registry.repositories.get("race/app")
        assert repo_one is not None
        assert repo_two is not None
        upload_id = await one.state.registry.uploads.start(repo_one)
        completing = asyncio.create_task(
            one.state.registry.uploads.complete(
                repo_one, upload_id, digest, _slowly(blob, 48, 0.01), len(blob)
            )
        )
        await asyncio.sleep(0.1)  # the final chunk is streaming in on node one
        outcomes: list[str] = []
        for _ in range(6):
            try:
                await two.state.registry.uploads.append(
                    repo_two, upload_id, _chunks(b"x" * 1024), None, 1024
                )
                outcomes.append("appended")
            except (RangeInvalid, BlobUploadUnknown) as exc:
                outcomes.append(type(exc).__name__)
        assert await completing == len(blob)
        assert "appended" not in outcomes
        async with two.client.get(f"/v2/race/app/blobs/{digest}", headers=two.admin) as resp:
            assert resp.status == 200
            assert await resp.read() == blob


async def test_a_writer_that_keeps_the_session_makes_others_wait_then_refuses(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path / "data") as app:
        await app.push_blob("busy/app", b"exists")
        repository = await app.state.registry.repositories.get("busy/app")
        assert repository is not None
        uploads = app.state.registry.uploads
        upload_id = await uploads.start(repository)
        store = app.state.registry.store.uploads
        async with store.hold(UploadRef(repository.id, upload_id)):
            with pytest.raises(RangeInvalid, match="being written by another request"):
                async with asyncio.timeout(20):
                    await uploads.append(repository, upload_id, _chunks(b"late"), None, 4)
        assert await uploads.append(repository, upload_id, _chunks(b"next"), None, 4) == 4


async def test_a_stored_file_that_is_not_the_blob_is_quarantined_and_replaced(
    tmp_path: Path,
) -> None:
    """A push trusts a stored blob file only when it holds the blob (size, or digest when no
    row vouches for it); one that does not goes to quarantine."""
    async with running_app(tmp_path / "data") as app:
        blobs = app.state.registry.store.blobs
        good = b"the real layer"
        digest = Digest.parse(await app.push_blob("q/app", good))
        path = Path(blobs.local_path(digest) or "")
        _poison(path, good + b" and foreign bytes")  # longer: caught by its size
        await app.push_blob("q/other", good)
        assert await asyncio.to_thread(path.read_bytes) == good
        quarantined = list((tmp_path / "data" / "storage" / "quarantine").rglob("*"))
        assert [p.read_bytes() for p in quarantined if p.is_file()] == [
            good + b" and foreign bytes"
        ]

        orphan = b"an orphan, placed by a crash before its row"
        orphan_digest = Digest.parse("sha256:" + hashlib.sha256(orphan).hexdigest())
        orphan_path = Path(blobs.local_path(orphan_digest) or "")
        _poison(orphan_path, b"X" * len(orphan))  # same size, other bytes: caught by digest
        await app.push_blob("q/app", orphan)
        assert await asyncio.to_thread(orphan_path.read_bytes) == orphan


def _poison(path: Path, data: bytes) -> None:
    """Replace a blob file's bytes behind the registry's back (a new inode: the upload's
    hard link keeps the verified copy)."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def test_a_mount_of_a_blob_whose_file_is_not_its_size_falls_back_to_an_upload(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path / "data") as app:
        good = b"mounted layer"
        digest = await app.push_blob("m/one", good)
        path = Path(app.state.registry.store.blobs.local_path(Digest.parse(digest)) or "")
        _poison(path, good + b"!")
        async with app.client.post(
            "/v2/m/two/blobs/uploads/",
            params={"mount": digest, "from": "m/one"},
            headers=app.admin,
        ) as resp:
            assert resp.status == 202  # an upload session, not a link to the bad file
        await app.push_blob("m/two", good)
        assert await asyncio.to_thread(path.read_bytes) == good


async def test_open_sessions_are_capped_per_repository_and_per_account(tmp_path: Path) -> None:
    async with running_app(
        tmp_path / "data", upload_sessions_per_repository=3, upload_sessions_per_account=5
    ) as app:

        async def start(repo: str) -> tuple[int, str, dict[str, str]]:
            async with app.client.post(f"/v2/{repo}/blobs/uploads/", headers=app.admin) as resp:
                return resp.status, await resp.text(), dict(resp.headers)

        opened = [(await start("cap/one"))[2]["Location"] for _ in range(3)]
        status, body, headers = await start("cap/one")
        assert status == 429
        assert "3 upload sessions are already open for this repository (cap/one)" in body
        assert headers["Retry-After"] == "60"
        async with app.client.delete(opened.pop(), headers=app.admin) as resp:
            assert resp.status == 204
        opened.append((await start("cap/one"))[2]["Location"])
        opened += [(await start("cap/two"))[2]["Location"] for _ in range(2)]
        status, body, _ = await start("cap/three")
        assert status == 429
        assert "5 upload sessions are already open for this account (admin)" in body
        blob = b"completing a session frees its place"
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        async with app.client.put(
            opened.pop(), params={"digest": digest}, data=blob, headers={**app.admin, **OCTET}
        ) as resp:
            assert resp.status == 201
        assert (await start("cap/three"))[0] == 202
        # a session that vanished without its marker (a crash) stops counting at the cap
        sessions = tmp_path / "data" / "storage" / "uploads"
        await asyncio.to_thread(shutil.rmtree, next(sessions.glob("*/*")))
        assert (await start("cap/four"))[0] == 202


async def test_a_new_blob_is_not_read_back_after_its_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload's running hash verified it; only a file that was there before is re-hashed."""
    read_back: list[Digest] = []
    digest_of = BlobStore.digest_of

    async def counting(self: BlobStore, digest: Digest) -> Digest:
        read_back.append(digest)
        return await digest_of(self, digest)

    monkeypatch.setattr(BlobStore, "digest_of", counting)
    async with running_app(tmp_path / "data") as app:
        await app.push_blob("fresh/app", os.urandom(64 * 1024))
        await app.push_blob("fresh/other", b"another new blob")
    assert read_back == []
