"""`LayoutTarget`: the files it writes (regclient's `ocidir` conventions), what it refuses, and
how it reads layouts written by other tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.client.layout import (
    LayoutTarget,
    parse_layout_reference,
)
from dockyard.client.layoutfs import REF_NAME, LayoutInvalid
from dockyard.client.registry import RegistryClient
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameInvalid,
    SizeInvalid,
)
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag
from support.ocilayout import Image, Layout, build_artifact, build_image, random_bytes


def _layout_ref(tag: str | None = None, digest: Digest | None = None) -> Reference:
    """A reference into a layout: `LayoutTarget` reads only its tag and digest."""
    return Reference.layout("layout", tag, digest)


def index_of(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "index.json").read_bytes())
    return data


def names(root: Path) -> list[str | None]:
    return [e.get("annotations", {}).get(REF_NAME) for e in index_of(root)["manifests"]]


def blob_desc(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type, Digest.of(data), len(data))


async def push(layout: LayoutTarget, ref: Reference, image: Image) -> Manifest:
    for blob in image.blobs():
        await layout.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
    manifest = parse_manifest(image.manifest.data)
    await layout.manifest_put(ref, manifest)
    return manifest


async def read_all(layout: LayoutTarget, desc: Descriptor) -> bytes:
    data = bytearray()
    async for chunk in layout.blob_get(_layout_ref(), desc):
        data += chunk
    return bytes(data)


def leftovers(root: Path) -> list[Path]:
    """Temp files a write left behind."""
    return list(root.rglob(".tmp-*"))


# --- files on disk ---------------------------------------------------------------------------


async def test_a_first_write_creates_the_layout(tmp_path: Path) -> None:
    root = tmp_path / "new" / "layout"
    layout = LayoutTarget(root)
    manifest = await push(layout, _layout_ref("v1"), build_image({"a": "b"}))
    assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    entries = index_of(root)["manifests"]
    assert entries == [
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": str(manifest.digest),
            "size": len(manifest.raw),
            "annotations": {REF_NAME: "v1"},
        }
    ]
    stored = root / "blobs" / "sha256" / manifest.digest.encoded
    assert stored.read_bytes() == manifest.raw
    assert leftovers(root) == []


async def test_a_tag_is_replaced_in_place_and_digests_stay_out_of_the_index(
    tmp_path: Path,
) -> None:
    layout = LayoutTarget(tmp_path)
    await push(layout, _layout_ref("a"), build_image({"n": "1"}))
    await push(layout, _layout_ref("b"), build_image({"n": "2"}))
    third = await push(layout, _layout_ref("a"), build_image({"n": "3"}))
    by_digest = build_image({"n": "4"})
    untagged = await push(layout, _layout_ref(digest=Digest.parse(by_digest.digest)), by_digest)
    assert names(tmp_path) == ["a", "b"]
    assert index_of(tmp_path)["manifests"][0]["digest"] == str(third.digest)
    assert (await layout.manifest_get(_layout_ref("a"))).digest == third.digest
    # by digest: stored as a blob, readable, not listed
    got = await layout.manifest_get(_layout_ref(digest=untagged.digest))
    assert got.raw == untagged.raw
    head = await layout.manifest_head(_layout_ref(digest=untagged.digest))
    assert head is not None
    assert (head.media_type, head.digest, head.size) == (
        mt.OCI_MANIFEST,
        untagged.digest,
        len(untagged.raw),
    )
    assert sorted(await layout.tag_list(_layout_ref())) == ["a", "b"]
    config = Digest.parse(by_digest.config.digest)
    assert await layout.manifest_head(_layout_ref(digest=config)) is None  # not a manifest


async def test_concurrent_tags_all_land_in_index_json(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    image = build_image({"same": "image"})
    manifest = await push(layout, _layout_ref("seed"), image)
    tags = [f"t{i}" for i in range(30)]
    await asyncio.gather(*(layout.manifest_put(_layout_ref(t), manifest) for t in tags))
    other = LayoutTarget(tmp_path)  # a second writer on the same folder: the flock
    await asyncio.gather(
        *(other.manifest_put(_layout_ref(f"o{i}"), manifest) for i in range(10)),
        *(layout.manifest_put(_layout_ref(f"p{i}"), manifest) for i in range(10)),
    )
    listed = await layout.tag_list(_layout_ref())
    assert len(listed) == 1 + 30 + 20


async def test_referrers_go_to_the_fallback_tag_index_as_regclient_keeps_them(
    tmp_path: Path,
) -> None:
    layout = LayoutTarget(tmp_path)
    image = build_image({"signed": "image"})
    subject = await push(layout, _layout_ref("v1"), image)
    artifacts = [
        build_artifact(image.descriptor(), "application/vnd.example.sig", b"sig"),
        build_artifact(image.descriptor(), "application/vnd.example.sbom", b"sbom"),
    ]
    for artifact in artifacts:
        await push(layout, _layout_ref(digest=Digest.parse(artifact.digest)), artifact)
    await push(layout, _layout_ref(digest=Digest.parse(artifacts[0].digest)), artifacts[0])

    tag = fallback_tag(subject.digest)
    assert names(tmp_path) == ["v1", tag]
    fallback = await layout.manifest_get(_layout_ref(tag))
    assert fallback.media_type == mt.OCI_INDEX
    assert [(str(d.digest), d.artifact_type) for d in fallback.children] == [
        (artifacts[0].digest, "application/vnd.example.sig"),
        (artifacts[1].digest, "application/vnd.example.sbom"),
    ]
    listed = await layout.referrers(_layout_ref("v1"))
    assert [str(d.digest) for d in listed] == [a.digest for a in artifacts]
    only = await layout.referrers(_layout_ref("v1"), artifact_type="application/vnd.example.sbom")
    assert [str(d.digest) for d in only] == [artifacts[1].digest]
    assert await layout.referrers(_layout_ref(), subject.digest) == listed
    with pytest.raises(ManifestUnknown):
        await layout.referrers(_layout_ref("missing"))


async def test_referrers_listed_only_in_index_json_are_found(tmp_path: Path) -> None:
    built = Layout(tmp_path)  # writes artifacts as untagged index.json entries (as oras does)
    subject = built.add_image("v1", {"a": "b"})
    sig = built.add_artifact(subject, "application/vnd.example.sig", b"sig")
    built.add_image("v2", {"c": "d"})
    layout = LayoutTarget(tmp_path)
    listed = await layout.referrers(_layout_ref("v1"))
    assert [(str(d.digest), d.artifact_type) for d in listed] == [
        (sig["digest"], "application/vnd.example.sig")
    ]
    assert await layout.referrers(_layout_ref("v2")) == []


# --- blobs -----------------------------------------------------------------------------------


async def test_blobs_stream_in_and_out_in_pieces(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    data = random_bytes(9 * 1024 * 1024 + 17, seed="layout-stream")
    desc = blob_desc(data)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    assert await layout.blob_put(_layout_ref(), desc, stream()) == desc
    head = await layout.blob_head(_layout_ref(), desc)
    assert head == desc
    chunks = [chunk async for chunk in layout.blob_get(_layout_ref(), desc)]
    assert len(chunks) > 1
    assert b"".join(chunks) == data
    assert await layout.blob_mount(_layout_ref(), desc, "elsewhere") is False


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"wrong bytes, right size", DigestInvalid),
        (b"too long: right prefix + extra", SizeInvalid),
        (b"short", SizeInvalid),
    ],
)
async def test_wrong_bytes_leave_nothing(
    tmp_path: Path, body: bytes, error: type[Exception]
) -> None:
    layout = LayoutTarget(tmp_path)
    real = b"the right bytes of this blob!!!"[: len(b"wrong bytes, right size")]
    desc = blob_desc(real)
    with pytest.raises(error):
        await layout.blob_put(_layout_ref(), desc, body)
    assert await layout.blob_head(_layout_ref(), desc) is None
    assert leftovers(tmp_path) == []


async def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    data = random_bytes(6 * 1024 * 1024, seed="broken")

    async def broken() -> AsyncIterator[bytes]:
        yield data[: 5 * 1024 * 1024]
        raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        await layout.blob_put(_layout_ref(), blob_desc(data), broken())
    assert await layout.blob_head(_layout_ref(), blob_desc(data)) is None
    assert leftovers(tmp_path) == []


async def test_corrupted_files_are_refused_on_read(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    image = build_image({"will": "rot"})
    manifest = await push(layout, _layout_ref("v1"), image)
    config = Descriptor.from_json(image.config.descriptor())
    config_path = tmp_path / "blobs" / "sha256" / config.digest.encoded
    config_path.write_bytes(bytes([config_path.read_bytes()[0] ^ 1]) + config_path.read_bytes()[1:])
    with pytest.raises(DigestInvalid):
        await read_all(layout, config)
    manifest_path = tmp_path / "blobs" / "sha256" / manifest.digest.encoded
    manifest_path.write_bytes(manifest.raw.replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(DigestInvalid):
        await layout.manifest_get(_layout_ref("v1"))
    config_path.write_bytes(image.config.data + b"\n")  # one byte too many
    with pytest.raises(SizeInvalid):
        await read_all(layout, config)


async def test_the_chunk_completing_a_wrong_blob_is_never_handed_over(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    data = random_bytes(3 * 1024 * 1024, seed="rot")
    desc = blob_desc(data)
    await layout.blob_put(_layout_ref(), desc, data)
    path = tmp_path / "blobs" / "sha256" / desc.digest.encoded
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    received: list[int] = []

    async def consume() -> None:
        async for chunk in layout.blob_get(_layout_ref(), desc):
            received.append(len(chunk))

    with pytest.raises(DigestInvalid):
        await consume()
    assert 0 < sum(received) < len(data)


# --- manifests -------------------------------------------------------------------------------


async def test_a_manifest_needs_its_blobs_and_children(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    image = build_image({"lonely": "manifest"})
    with pytest.raises(ManifestBlobUnknown):
        await layout.manifest_put(_layout_ref("v1"), parse_manifest(image.manifest.data))
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [image.descriptor()],
    }
    with pytest.raises(ManifestBlobUnknown):
        await layout.manifest_put(_layout_ref("i"), parse_manifest(json.dumps(index).encode()))
    assert not (tmp_path / "index.json").exists() or names(tmp_path) == []
    with pytest.raises(DigestInvalid):
        await layout.manifest_put(
            _layout_ref(digest=Digest.of(b"other")), parse_manifest(image.manifest.data)
        )


async def test_an_empty_or_missing_layout_has_nothing(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path / "absent")
    assert await layout.tag_list(_layout_ref()) == []
    assert await layout.manifest_head(_layout_ref("v1")) is None
    with pytest.raises(ManifestUnknown):
        await layout.manifest_get(_layout_ref("v1"))
    missing = blob_desc(b"nothing")
    assert await layout.blob_head(_layout_ref(), missing) is None
    with pytest.raises(BlobUnknown):
        await read_all(layout, missing)
    assert not (tmp_path / "absent").exists()  # reads create nothing


async def test_tags_written_as_full_image_names_are_found_but_not_listed(tmp_path: Path) -> None:
    layout = LayoutTarget(tmp_path)
    manifest = await push(layout, _layout_ref("plain"), build_image({"a": "b"}))
    index = index_of(tmp_path)
    entry = dict(index["manifests"][0])
    entry["annotations"] = {REF_NAME: "docker.io/library/app:1.0"}
    index["manifests"].append(entry)
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert await layout.tag_list(_layout_ref()) == ["plain"]
    head = await layout.manifest_head(_layout_ref("1.0"))
    assert head is not None
    assert head.digest == manifest.digest


async def test_a_layout_of_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    (tmp_path / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    with pytest.raises(LayoutInvalid, match=r"2\.0\.0"):
        await LayoutTarget(tmp_path).tag_list(_layout_ref())


# --- references ------------------------------------------------------------------------------


def test_layout_references_parse_like_skopeo() -> None:
    path, ref = parse_layout_reference("oci:/data/images:1.25")
    assert path == Path("/data/images")
    assert ref == Reference.layout("/data/images", "1.25")
    assert str(ref) == "ocidir:///data/images:1.25"
    assert parse_layout_reference("ocidir:///data/images:1.25") == (path, ref)
    _, latest = parse_layout_reference("oci:relative/dir")
    assert latest.tag == "latest"
    digest = Digest.of(b"x")
    _, pinned = parse_layout_reference(f"oci:dir@{digest}")
    assert pinned.digest == digest
    for bad in ("docker://x", "oci:", "oci:dir:"):
        with pytest.raises(ValueError):
            parse_layout_reference(bad)


async def test_a_registry_client_refuses_a_layout_reference() -> None:
    # before, a layout's reference named the registry `oci-layout.invalid`, which was resolved
    async with RegistryClient() as registry:
        with pytest.raises(NameInvalid, match="ocidir://out:v1 names an OCI layout folder"):
            await registry.manifest_head(Reference.layout("out", "v1"))
        with pytest.raises(NameInvalid, match="OCI layout folder"):
            await registry.tag_list(Reference.layout("out"))
        assert registry.client._transports == {}
