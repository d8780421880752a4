"""`StoreTarget`: the registry's own rules hold in process exactly as over HTTP (access policy,
immutable tags, verified uploads, nothing half-visible), and what it stores is what /v2 serves.
The shared contract with the other targets is in tests/integration/test_targets.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.auth.policy import ANONYMOUS, Subject
from dockyard.client.target import Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    Denied,
    DigestInvalid,
    ManifestBlobUnknown,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
)
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.inprocess import ADMIN_PASSWORD, InProcess
from support.ocilayout import Image, build_artifact, build_image, random_bytes


def ref(text: str) -> Reference:
    return Reference.parse(f"dockyard.test/{text}")


async def subject(app: InProcess, name: str, password: str) -> Subject:
    found = await app.state.accounts.authenticate(name, password)
    assert found is not None
    return found


async def store(app: InProcess, who: Subject | None = None) -> StoreTarget:
    return StoreTarget(app.state.registry, who or await subject(app, "admin", ADMIN_PASSWORD))


async def push(target: Target, where: Reference, image: Image) -> Manifest:
    for blob in image.blobs():
        await target.blob_put(where, Descriptor.from_json(blob.descriptor()), blob.data)
    manifest = parse_manifest(image.manifest.data)
    await target.manifest_put(where, manifest)
    return manifest


def rot(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def upload_ids(app: InProcess) -> list[str]:
    sessions = app.state.registry.store.uploads.sessions()
    return [upload.upload_id async for upload, _ in sessions]


async def test_what_it_stores_is_what_v2_serves(sqlite_app: InProcess) -> None:
    target = await store(sqlite_app)
    image = build_image({"in": "process"})
    manifest = await push(target, ref("admin/app:v1"), image)
    artifact = build_artifact(image.descriptor(), "application/vnd.example.sig", b"sig")
    pinned = Reference("dockyard.test", "admin/app", None, Digest.parse(artifact.digest))
    await push(target, pinned, artifact)

    client, admin = sqlite_app.client, sqlite_app.admin
    async with client.get("/v2/admin/app/manifests/v1", headers=admin) as resp:
        assert resp.status == 200
        assert await resp.read() == manifest.raw
        assert resp.headers["Docker-Content-Digest"] == str(manifest.digest)
    async with client.get(f"/v2/admin/app/referrers/{manifest.digest}", headers=admin) as resp:
        listed = json.loads(await resp.read())["manifests"]
    assert [(e["digest"], e["artifactType"]) for e in listed] == [
        (artifact.digest, "application/vnd.example.sig")
    ]
    for blob in image.blobs():
        async with client.get(f"/v2/admin/app/blobs/{blob.digest}", headers=admin) as resp:
            assert await resp.read() == blob.data


async def test_the_access_policy_applies(sqlite_app: InProcess) -> None:
    admin = await store(sqlite_app)
    await push(admin, ref("admin/private:v1"), build_image({"private": "yes"}))
    await sqlite_app.user("alice")
    alice = await store(sqlite_app, await subject(sqlite_app, "alice", "alice-password"))
    anonymous = await store(sqlite_app, ANONYMOUS)
    blob = Descriptor("application/octet-stream", Digest.of(b"data"), 4)

    with pytest.raises(Unauthorized):
        await anonymous.manifest_get(ref("admin/private:v1"))
    with pytest.raises(Unauthorized):
        await anonymous.blob_put(ref("admin/private:v1"), blob, b"data")
    with pytest.raises(Denied):
        await alice.manifest_get(ref("admin/private:v1"))
    with pytest.raises(Denied):
        await alice.tag_list(ref("admin/private:v1"))
    with pytest.raises(Denied):
        await alice.blob_put(ref("admin/private:v1"), blob, b"data")
    with pytest.raises(Denied):
        await alice.referrers(ref("admin/private:v1"), Digest.of(b"x"))
    # her own namespace is hers: created private on first push
    mine = await push(alice, ref("alice/app:v1"), build_image({"mine": "yes"}))
    assert (await alice.manifest_get(ref("alice/app:v1"))).raw == mine.raw
    with pytest.raises(NameUnknown):
        await alice.tag_list(ref("alice/nothing:v1"))


async def test_immutable_tags_hold(sqlite_app: InProcess) -> None:
    admin_subject = await subject(sqlite_app, "admin", ADMIN_PASSWORD)
    target = await store(sqlite_app, admin_subject)
    first = await push(target, ref("admin/fixed:v1"), build_image({"n": "1"}))
    await sqlite_app.state.registry.repositories.configure(
        admin_subject, "admin/fixed", immutable_tags=True
    )
    await target.manifest_put(ref("admin/fixed:v1"), first)  # same digest: fine
    with pytest.raises(Denied, match="immutable"):
        await push(target, ref("admin/fixed:v1"), build_image({"n": "2"}))
    assert (await target.manifest_get(ref("admin/fixed:v1"))).digest == first.digest


async def test_mounts_need_pull_on_the_source(sqlite_app: InProcess) -> None:
    admin = await store(sqlite_app)
    image = build_image({"shared": "base"})
    await push(admin, ref("admin/base:v1"), image)
    config = Descriptor.from_json(image.config.descriptor())
    assert await admin.blob_mount(ref("admin/copy:v1"), config, "admin/base") is True
    assert await admin.blob_head(ref("admin/copy:v1"), config) == config

    await sqlite_app.user("bob")
    bob = await store(sqlite_app, await subject(sqlite_app, "bob", "bob-password"))
    assert await bob.blob_mount(ref("bob/copy:v1"), config, "admin/base") is False
    assert await bob.blob_head(ref("bob/copy:v1"), config) is None
    unknown = Descriptor("application/octet-stream", Digest.of(b"nowhere"), 7)
    assert await admin.blob_mount(ref("admin/copy:v1"), unknown, "admin/base") is False
    assert await admin.blob_mount(ref("admin/copy:v1"), config, "admin/missing") is False
    with pytest.raises(Denied):
        await bob.blob_mount(ref("admin/copy:v1"), config, "bob/copy")


async def test_wrong_bodies_leave_no_blob_and_no_upload(sqlite_app: InProcess) -> None:
    target = await store(sqlite_app)
    data = random_bytes(6 * 1024 * 1024, seed="store-stream")
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))

    async def longer() -> AsyncIterator[bytes]:
        yield data
        yield b"one more"

    async def shorter() -> AsyncIterator[bytes]:
        yield data[:-1]

    async def corrupted() -> AsyncIterator[bytes]:
        yield data[:-1] + b"?"

    for body, error in ((longer, SizeInvalid), (shorter, SizeInvalid), (corrupted, DigestInvalid)):
        with pytest.raises(error):
            await target.blob_put(ref("admin/bad:v1"), desc, body)
        assert await target.blob_head(ref("admin/bad:v1"), desc) is None
        assert await upload_ids(sqlite_app) == []
    await target.blob_put(ref("admin/bad:v1"), desc, data)
    assert await target.blob_head(ref("admin/bad:v1"), desc) == desc


async def test_a_manifest_before_its_blobs_is_refused_whole(sqlite_app: InProcess) -> None:
    target = await store(sqlite_app)
    image = build_image({"too": "early"})
    with pytest.raises(ManifestBlobUnknown):
        await target.manifest_put(ref("admin/early:v1"), parse_manifest(image.manifest.data))
    assert await sqlite_app.state.registry.repositories.get("admin/early") is None


async def test_bytes_that_rot_in_the_store_are_refused_on_read(sqlite_app: InProcess) -> None:
    target = await store(sqlite_app)
    data = random_bytes(3 * 1024 * 1024, seed="store-rot")
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.of(data), len(data))
    await target.blob_put(ref("admin/rot:v1"), desc, data)
    path = sqlite_app.state.registry.store.blobs.local_path(desc.digest)
    assert path is not None
    rot(Path(path), data[:-1] + b"!")
    received: list[int] = []

    async def consume() -> None:
        async for chunk in target.blob_get(ref("admin/rot:v1"), desc):
            received.append(len(chunk))

    with pytest.raises(DigestInvalid):
        await consume()
    assert sum(received) < len(data)


async def test_a_sha512_manifest_pushed_to_a_tag_keeps_its_digest(sqlite_app: InProcess) -> None:
    target = await store(sqlite_app)
    image = build_image({"digest": "sha512"})
    where = ref("admin/long-digests:v1")
    for blob in image.blobs():
        await target.blob_put(where, Descriptor.from_json(blob.descriptor()), blob.data)
    manifest = parse_manifest(image.manifest.data, algorithm="sha512")
    await target.manifest_put(where, manifest)
    found = await target.manifest_head(where)
    assert found is not None
    assert found.digest == manifest.digest
    assert found.digest.algorithm == "sha512"
    assert (await target.manifest_get(where.with_digest(manifest.digest))).raw == manifest.raw
