"""Garbage collection keeps what manifests reference and removes what nothing does."""

from __future__ import annotations

import hashlib

from dockyard.oci.digest import Digest
from dockyard.registry.gc import collect, expire_uploads
from dockyard.storage.paths import UploadRef
from support.inprocess import InProcess


async def _blob_status(app: InProcess, repo: str, digest: str) -> int:
    async with app.client.head(f"/v2/{repo}/blobs/{digest}", headers=app.admin) as resp:
        return resp.status


async def test_unreferenced_blobs_go_referenced_blobs_stay(registry_app: InProcess) -> None:
    app = registry_app
    store = app.state.registry.store
    manifest_digest, _ = await app.push_image("admin/gc", "v1", layers=[b"kept layer"])
    orphan = await app.push_blob("admin/gc", b"nobody references me")

    dry = await collect(store, grace_seconds=0, dry_run=True)
    app.state.registry.forget_cached()
    assert (dry.links, dry.blobs) == (1, 1)  # what the real run below removes
    assert await _blob_status(app, "admin/gc", orphan) == 200  # and nothing was removed

    result = await collect(store, grace_seconds=0)
    app.state.registry.forget_cached()
    assert result.links == 1
    assert result.blobs == 1
    assert await _blob_status(app, "admin/gc", orphan) == 404
    assert await store.blobs.size(Digest.parse(orphan)) is None
    kept = "sha256:" + hashlib.sha256(b"kept layer").hexdigest()
    assert await _blob_status(app, "admin/gc", kept) == 200
    async with app.client.get(
        f"/v2/admin/gc/manifests/{manifest_digest}", headers=app.admin
    ) as resp:
        assert resp.status == 200


async def test_grace_period_spares_recent_uploads(registry_app: InProcess) -> None:
    app = registry_app
    orphan = await app.push_blob("admin/gc", b"just uploaded, manifest still coming")
    result = await collect(app.state.registry.store, grace_seconds=3600)
    assert (result.links, result.blobs) == (0, 0)
    assert await _blob_status(app, "admin/gc", orphan) == 200


async def test_deleting_a_manifest_frees_its_blobs(registry_app: InProcess) -> None:
    app = registry_app
    store = app.state.registry.store
    digest, _ = await app.push_image("admin/gc", "gone", layers=[b"only here"])
    async with app.client.delete(f"/v2/admin/gc/manifests/{digest}", headers=app.admin) as resp:
        assert resp.status == 202
    result = await collect(store, grace_seconds=0)
    app.state.registry.forget_cached()
    assert result.blobs == 2  # the layer and the config
    layer = Digest.parse("sha256:" + hashlib.sha256(b"only here").hexdigest())
    assert await store.blobs.size(layer) is None


async def test_a_blob_shared_by_two_repositories_stays_while_one_uses_it(
    registry_app: InProcess,
) -> None:
    app = registry_app
    store = app.state.registry.store
    await app.push_image("admin/one", "v1", layers=[b"shared"])
    digest, _ = await app.push_image("admin/two", "v1", layers=[b"shared"])
    async with app.client.delete(f"/v2/admin/two/manifests/{digest}", headers=app.admin) as resp:
        assert resp.status == 202
    result = await collect(store, grace_seconds=0)
    app.state.registry.forget_cached()
    assert result.blobs == 0
    assert (
        await _blob_status(app, "admin/one", "sha256:" + hashlib.sha256(b"shared").hexdigest())
        == 200
    )


async def test_orphan_files_and_abandoned_uploads_are_removed(registry_app: InProcess) -> None:
    app = registry_app
    store = app.state.registry.store
    # bytes placed by an upload that crashed before its row was written
    crashed = UploadRef(1, "crashed")
    await store.uploads.create(crashed)

    async def body():
        yield b"orphan bytes"

    await store.uploads.append(crashed, body())
    orphan = Digest.of(b"orphan bytes")
    await store.blobs.place_upload(crashed, orphan)
    async with app.client.post("/v2/admin/gc/blobs/uploads/", headers=app.admin) as resp:
        assert resp.status == 202
        location = resp.headers["Location"]
    result = await collect(store, grace_seconds=0)
    app.state.registry.forget_cached()
    assert result.orphan_files == 1
    assert result.uploads == 2  # the session started over HTTP and the crashed one
    assert await store.blobs.size(orphan) is None
    async with app.client.get(location, headers=app.admin) as resp:
        assert resp.status == 404
    assert await expire_uploads(store, 0) == 0
