"""One contract, every `Target`: an OCI layout folder (`LayoutTarget`), Dockyard's own store in
process (`StoreTarget`, on SQLite and PostgreSQL), and remote registries over loopback
(`RegistryClient` against `dockyard serve` with the referrers API and CNCF distribution 2.8
without it). Then layout interop with skopeo, both ways, and through an archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import pytest_asyncio

from dockyard.client.archive import export_archive, import_archive
from dockyard.client.layout import LayoutTarget
from dockyard.client.settings import Credential
from dockyard.client.target import Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    SizeInvalid,
)
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.inprocess import ADMIN_PASSWORD, running_app
from support.ocilayout import (
    Image,
    Layout,
    build_artifact,
    build_image,
    digest_of,
    index_bytes,
    random_layer,
)
from support.peers import DockerRegistry, Skopeo
from support.remote import bounded, remote


def _layout_ref(tag: str | None = None, digest: Digest | None = None) -> Reference:
    """A reference into a layout: `LayoutTarget` reads only its tag and digest."""
    return Reference.layout("layout", tag, digest)


@dataclass
class Place:
    """A target under test and how references into it are spelled."""

    kind: str
    target: Target
    registry: str

    def ref(self, text: str) -> Reference:
        if isinstance(self.target, LayoutTarget):  # a layout holds one repository
            return Reference.layout(str(self.target.root), text.partition(":")[2] or None)
        return Reference.parse(f"{self.registry}/{text}")


@pytest_asyncio.fixture(
    params=[
        "layout",
        "store",
        pytest.param("store-postgres", marks=pytest.mark.peers),
        pytest.param("dockyard", marks=pytest.mark.peers),
        pytest.param("distribution", marks=pytest.mark.peers),
    ]
)
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Place]:
    """Each kind of target, empty."""
    kind: str = request.param
    if kind == "layout":
        yield Place(kind, LayoutTarget(tmp_path / "layout"), "")
    elif kind.startswith("store"):
        url = request.getfixturevalue("postgres_database_url") if kind == "store-postgres" else None
        async with running_app(tmp_path / "data", url) as app:
            admin = await app.state.accounts.authenticate("admin", ADMIN_PASSWORD)
            assert admin is not None
            yield Place(kind, StoreTarget(app.state.registry, admin), "dockyard.test")
    elif kind == "dockyard":
        server = request.getfixturevalue("dockyard_server")
        credential = Credential(username="admin", password=server.admin_password)
        async with remote(server.host, credential) as client:
            yield Place(kind, client, server.host)
    else:
        registry: DockerRegistry = request.getfixturevalue("docker_registry")
        async with remote(registry.host) as client:
            yield Place(kind, client, registry.host)


def desc_of(blob_json: dict[str, object]) -> Descriptor:
    return Descriptor.from_json(blob_json)


def pinned(ref: Reference, digest: Digest | str) -> Reference:
    """`ref`'s repository at `digest`, without a tag (a tag would be where a put goes)."""
    return replace(ref, tag=None, digest=Digest.parse(str(digest)))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_all(target: Target, ref: Reference, desc: Descriptor) -> bytes:
    data = bytearray()
    async for chunk in target.blob_get(ref, desc):
        data += chunk
    return bytes(data)


async def push_image(target: Target, ref: Reference, image: Image) -> Manifest:
    """Blobs first (as bytes), then the manifest under `ref`."""
    for blob in image.blobs():
        await target.blob_put(ref, desc_of(blob.descriptor()), blob.data)
    manifest = parse_manifest(image.manifest.data)
    await target.manifest_put(ref, manifest)
    return manifest


# --- the contract ----------------------------------------------------------------------------


@bounded
async def test_blobs_come_back_identical_whatever_the_body(place: Place) -> None:
    ref = place.ref("contract/blobs:v1")
    big = random_layer(5 << 20, seed="contract-big")  # several write buffers
    small = b"small blob"
    empty = mt.EMPTY_JSON

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(big.data), 300_000):
            yield big.data[start : start + 300_000]

    big_desc = desc_of(big.descriptor())
    small_desc = Descriptor("application/octet-stream", Digest.of(small), len(small))
    empty_desc = Descriptor(mt.OCI_EMPTY, Digest.parse(mt.EMPTY_DIGEST), 2)
    assert await place.target.blob_head(ref, big_desc) is None
    await place.target.blob_put(ref, big_desc, stream)  # a callable: opened afresh
    await place.target.blob_put(ref, small_desc, small)
    await place.target.blob_put(ref, empty_desc, _once(empty))  # a bare stream, sent once

    for desc, data in ((big_desc, big.data), (small_desc, small), (empty_desc, empty)):
        head = await place.target.blob_head(ref, desc)
        assert head is not None
        assert (head.digest, head.size) == (desc.digest, len(data))
        assert await read_all(place.target, ref, desc) == data


@bounded
async def test_manifests_and_indexes_keep_their_bytes_and_digests(place: Place) -> None:
    ref = place.ref("contract/app:v1")
    amd64 = build_image({"etc/arch": "amd64"}, layers=[random_layer(1 << 20, seed="c-amd64")])
    arm64 = build_image({"etc/arch": "arm64"}, platform="linux/arm64")
    for image in (amd64, arm64):
        await push_image(place.target, pinned(ref, image.digest), image)
    raw = index_bytes([amd64.descriptor(), arm64.descriptor()])
    stored = await place.target.manifest_put(ref, parse_manifest(raw))
    assert str(stored.digest) == digest_of(raw)

    by_tag = await place.target.manifest_get(ref)
    assert by_tag.raw == raw
    assert by_tag.media_type == mt.OCI_INDEX
    assert str(by_tag.digest) == digest_of(raw)
    by_digest = await place.target.manifest_get(ref.with_digest(amd64.digest))
    assert by_digest.raw == amd64.manifest.data
    head = await place.target.manifest_head(ref)
    assert head is not None
    assert (str(head.digest), head.size, head.media_type) == (
        digest_of(raw),
        len(raw),
        mt.OCI_INDEX,
    )
    child_head = await place.target.manifest_head(ref.with_digest(arm64.digest))
    assert child_head is not None
    assert child_head.media_type == mt.OCI_MANIFEST
    assert child_head.size == len(arm64.manifest.data)


@bounded
async def test_tags_are_listed_and_move(place: Place) -> None:
    repo = place.ref("contract/tags:a")
    first = await push_image(place.target, repo, build_image({"a": "first"}))
    second = await push_image(place.target, repo.with_tag("b"), build_image({"b": "second"}))
    await place.target.manifest_put(repo.with_tag("c"), first)
    assert sorted(await place.target.tag_list(repo)) == ["a", "b", "c"]

    await place.target.manifest_put(repo.with_tag("a"), second)  # move a tag
    assert (await place.target.manifest_get(repo.with_tag("a"))).digest == second.digest
    assert sorted(await place.target.tag_list(repo)) == ["a", "b", "c"]


@bounded
async def test_referrers_of_a_subject(place: Place) -> None:
    ref = place.ref("contract/signed:v1")
    subject_image = build_image({"signed": "yes"})
    subject = await push_image(place.target, ref, subject_image)
    assert await place.target.referrers(ref) == []
    found: dict[Digest, str] = {}
    for artifact_type, payload in (
        ("application/vnd.dev.sigstore.bundle.v0.3+json", b'{"sig":1}'),
        ("application/spdx+json", b'{"spdx":1}'),
    ):
        artifact = build_artifact(subject_image.descriptor(), artifact_type, payload)
        stored = await push_image(place.target, pinned(ref, artifact.digest), artifact)
        assert stored.subject is not None
        found[stored.digest] = artifact_type

    listed = await place.target.referrers(ref)
    assert {d.digest: d.artifact_type for d in listed} == found
    assert all(d.media_type == mt.OCI_MANIFEST for d in listed)
    by_digest = await place.target.referrers(ref.with_tag("other"), subject.digest)
    assert {d.digest for d in by_digest} == set(found)
    sboms = await place.target.referrers(ref, artifact_type="application/spdx+json")
    assert [d.artifact_type for d in sboms] == ["application/spdx+json"]


@bounded
async def test_wrong_bytes_are_refused_and_nothing_is_stored(place: Place) -> None:
    ref = place.ref("contract/bad:v1")
    data = b"the real bytes"
    lie = Descriptor("application/octet-stream", Digest.of(b"other bytes!!!"), len(data))
    with pytest.raises(DigestInvalid):
        await place.target.blob_put(ref, lie, data)
    assert await place.target.blob_head(ref, lie) is None
    truthful = Descriptor("application/octet-stream", Digest.of(data), len(data) - 1)
    with pytest.raises(SizeInvalid):
        await place.target.blob_put(ref, truthful, data)
    assert await place.target.blob_head(ref, truthful) is None

    image = build_image({"missing": "layers"})
    with pytest.raises(ManifestBlobUnknown):  # its blobs were never stored
        await place.target.manifest_put(ref, parse_manifest(image.manifest.data))
    with pytest.raises(DigestInvalid):  # named by another digest than its own
        await place.target.manifest_put(
            pinned(ref, Digest.of(b"x")), parse_manifest(image.manifest.data)
        )


@bounded
async def test_unknown_things_are_unknown(place: Place) -> None:
    ref = place.ref("contract/known:v1")
    await push_image(place.target, ref, build_image({"known": "yes"}))
    with pytest.raises(ManifestUnknown):
        await place.target.manifest_get(ref.with_tag("nope"))
    missing = Digest.of(b"never stored")
    with pytest.raises(ManifestUnknown):
        await place.target.manifest_get(ref.with_digest(missing))
    assert await place.target.manifest_head(ref.with_tag("nope")) is None
    assert await place.target.manifest_head(ref.with_digest(missing)) is None
    blob = Descriptor("application/octet-stream", missing, 12)
    assert await place.target.blob_head(ref, blob) is None
    with pytest.raises(BlobUnknown):
        await read_all(place.target, ref, blob)


# --- layout interop --------------------------------------------------------------------------


@pytest.mark.peers
@bounded
async def test_skopeo_reads_a_layout_that_layout_target_wrote(
    tmp_path: Path, skopeo: Skopeo, docker_registry: DockerRegistry
) -> None:
    folder = tmp_path / "written"
    layout = LayoutTarget(folder)
    amd64 = build_image({"etc/arch": "amd64"}, layers=[random_layer(1 << 20, seed="skopeo-a")])
    arm64 = build_image({"etc/arch": "arm64"}, platform="linux/arm64")
    for image in (amd64, arm64):
        await push_image(layout, _layout_ref(digest=Digest.parse(image.digest)), image)
    raw = index_bytes([amd64.descriptor(), arm64.descriptor()])
    await layout.manifest_put(_layout_ref("multi"), parse_manifest(raw))
    await push_image(layout, _layout_ref("single"), amd64)

    assert digest_of(skopeo.inspect_raw(f"oci:{folder}:multi")) == digest_of(raw)
    target = f"docker://{docker_registry.host}/interop/written"
    skopeo.copy(f"oci:{folder}:multi", f"{target}:multi", all=True)
    skopeo.copy(f"oci:{folder}:single", f"{target}:single")
    assert skopeo.inspect_raw(f"{target}:multi") == raw
    assert skopeo.inspect_raw(f"{target}:single") == amd64.manifest.data


@pytest.mark.peers
@bounded
async def test_layout_target_reads_layouts_that_others_wrote(
    tmp_path: Path, skopeo: Skopeo, docker_registry: DockerRegistry
) -> None:
    built = Layout(tmp_path / "built")  # the test image builder skopeo and podman read
    index = built.add_multiplatform("multi")
    signature = built.add_artifact(index, "application/vnd.example.sig", b"signed")
    target = f"docker://{docker_registry.host}/interop/read"
    skopeo.copy(built.ref("multi"), f"{target}:multi", all=True)
    copied = tmp_path / "by-skopeo"
    skopeo.copy(f"{target}:multi", f"oci:{copied}:again", all=True)

    for folder, tag in ((built.path, "multi"), (copied, "again")):
        layout = LayoutTarget(folder)
        ref = _layout_ref(tag)
        top = await layout.manifest_get(ref)
        assert str(top.digest) == index["digest"]
        for child in top.children:
            manifest = await layout.manifest_get(ref.with_digest(child.digest))
            for blob in manifest.blobs:
                assert Digest.of(await read_all(layout, ref, blob)) == blob.digest
        assert tag in await layout.tag_list(ref)
    referrers = await LayoutTarget(built.path).referrers(_layout_ref("multi"))
    assert [(str(d.digest), d.artifact_type) for d in referrers] == [
        (signature["digest"], "application/vnd.example.sig")
    ]


@pytest.mark.peers
@bounded
async def test_an_exported_archive_is_read_by_skopeo_and_imported_back(
    tmp_path: Path, skopeo: Skopeo, docker_registry: DockerRegistry
) -> None:
    layout = LayoutTarget(tmp_path / "source")
    image = build_image({"air": "gapped"}, layers=[random_layer(2 << 20, seed="archive")])
    subject = await push_image(layout, _layout_ref("v1"), image)
    artifact = build_artifact(image.descriptor(), "application/vnd.example.sbom", b"{}")
    await push_image(layout, _layout_ref(digest=Digest.parse(artifact.digest)), artifact)

    tar = tmp_path / "image.tar"
    await export_archive(layout.root, tar)
    target = f"docker://{docker_registry.host}/interop/archive:v1"
    skopeo.copy(f"oci-archive:{tar}:v1", target)
    assert skopeo.inspect_raw(target) == image.manifest.data

    await import_archive(tar, tmp_path / "imported")
    imported = LayoutTarget(tmp_path / "imported")
    assert (await imported.manifest_get(_layout_ref("v1"))).raw == subject.raw
    referrers = await imported.referrers(_layout_ref("v1"))
    assert [str(d.digest) for d in referrers] == [artifact.digest]

    by_skopeo = tmp_path / "skopeo.tar"  # and an archive skopeo packed imports too
    skopeo.copy(target, f"oci-archive:{by_skopeo}:v2")
    await import_archive(by_skopeo, tmp_path / "from-skopeo")
    again = await LayoutTarget(tmp_path / "from-skopeo").manifest_get(_layout_ref("v2"))
    assert again.raw == image.manifest.data
