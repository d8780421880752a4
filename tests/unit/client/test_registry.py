"""`RegistryClient` against Dockyard in process (Bearer tokens, referrers API), and against the
same app made to look like a registry without the referrers API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dockyard.app import create_app
from dockyard.client.registry import RegistryClient
from dockyard.client.settings import Credential
from dockyard.config import Settings
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    DigestInvalid,
    ManifestUnknown,
    NameUnknown,
    Unauthorized,
    Unsupported,
)
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag
from support.ocilayout import Image, build_artifact, build_image, index_bytes

ADMIN = Credential(username="admin", password="admin-password")
REPO = Reference.parse("registry.test/team/app:v1")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@pytest_asyncio.fixture
async def dockyard(tmp_path: Path) -> AsyncIterator[Any]:
    app = create_app(Settings(data=tmp_path / "data", admin_password=ADMIN.password))
    async with app.router.lifespan_context(app):
        yield app


def without_referrers_api(app: ASGIApp) -> ASGIApp:
    """`app` as a registry without the referrers API: 404 on it, no `OCI-Subject` header."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "/referrers/" in scope["path"]:
            body = b"404 page not found\n"
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def filtered(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"oci-subject"]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, filtered)

    return wrapped


async def push_image(registry: RegistryClient, ref: Reference, image: Image) -> Manifest:
    for blob in image.blobs():
        await registry.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
    manifest = parse_manifest(image.manifest.data)
    await registry.manifest_put(ref, manifest)
    return manifest


async def test_ping_with_and_without_credentials(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    await registry_for(dockyard, credential=ADMIN).ping("registry.test")
    with pytest.raises(Unauthorized):
        await registry_for(dockyard).ping("registry.test")


async def test_push_and_pull_keep_every_byte(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    image = build_image({"etc/hello": "hello\n"})
    config = Descriptor.from_json(image.config.descriptor())
    layer = Descriptor.from_json(image.layers[0].descriptor())
    assert await registry.blob_head(REPO, layer) is None
    await registry.blob_put(REPO, layer, image.layers[0].data, chunk_size=50)
    await registry.blob_put(REPO, config, image.config.data)
    assert await registry.blob_head(REPO, layer) == layer
    pulled = b"".join([chunk async for chunk in registry.blob_get(REPO, layer)])
    assert pulled == image.layers[0].data

    manifest = parse_manifest(image.manifest.data)
    pushed = await registry.manifest_put(REPO, manifest)
    assert str(pushed.digest) == image.digest
    got = await registry.manifest_get(REPO)
    assert got.raw == image.manifest.data
    by_digest = await registry.manifest_get(REPO.with_digest(image.digest))
    assert by_digest.raw == image.manifest.data
    head = await registry.manifest_head(REPO)
    assert head is not None
    assert (str(head.digest), head.size, head.media_type) == (
        image.digest,
        len(image.manifest.data),
        mt.OCI_MANIFEST,
    )


async def test_an_index_and_its_children(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    images = [build_image(platform=p) for p in ("linux/amd64", "linux/arm64")]
    for image in images:
        await push_image(registry, REPO.with_digest(image.digest).with_tag("tmp"), image)
    raw = index_bytes([image.descriptor() for image in images])
    index = parse_manifest(raw)
    await registry.manifest_put(REPO.with_tag("multi"), index)
    got = await registry.manifest_get(REPO.with_tag("multi"))
    assert got.raw == raw
    assert [str(child.digest) for child in got.children] == [i.digest for i in images]
    assert got.children[1].platform is not None
    assert str(got.children[1].platform) == "linux/arm64"


async def test_missing_manifests(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    await push_image(registry, REPO, build_image())
    assert await registry.manifest_head(REPO.with_tag("nope")) is None
    with pytest.raises(ManifestUnknown):
        await registry.manifest_get(REPO.with_tag("nope"))
    with pytest.raises(NameUnknown):
        await registry.manifest_get(Reference.parse("registry.test/team/none:v1"))


def tampering(app: ASGIApp, marker: bytes, old: bytes, new: bytes) -> ASGIApp:
    """`app` with `old` replaced by `new` in every response body that contains `marker`."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def altered(message: MutableMapping[str, Any]) -> None:
            body = message.get("body", b"")
            if message["type"] == "http.response.body" and marker in body:
                message = {**message, "body": body.replace(old, new)}
            await send(message)

        await app(scope, receive, altered)

    return wrapped


async def test_a_manifest_with_other_bytes_than_its_digest_is_refused(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    image = build_image()
    await push_image(registry_for(dockyard, credential=ADMIN), REPO, image)
    # the same length, still a valid manifest, another digest
    registry = registry_for(
        tampering(dockyard, b"layers", b"tar+gzip", b"tar+zstd"), credential=ADMIN
    )
    with pytest.raises(DigestInvalid, match="expected sha256:"):
        await registry.manifest_get(REPO.with_digest(image.digest))
    with pytest.raises(DigestInvalid):
        await registry.manifest_get(REPO)  # against Docker-Content-Digest


async def test_a_blob_with_a_flipped_byte_is_refused(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    image = build_image(labels={"greeting": "hello"})
    await push_image(registry_for(dockyard, credential=ADMIN), REPO, image)
    registry = registry_for(tampering(dockyard, b"greeting", b"hello", b"jello"), credential=ADMIN)
    config = Descriptor.from_json(image.config.descriptor())
    with pytest.raises(DigestInvalid, match="bytes were discarded"):
        _ = [chunk async for chunk in registry.blob_get(REPO, config)]


async def test_tags_follow_link_pages(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    image = build_image()
    manifest = await push_image(registry, REPO, image)
    names = [f"t{i}" for i in range(7)]
    for name in names:
        await registry.manifest_put(REPO.with_tag(name), manifest)
    assert await registry.tag_list(REPO, page_size=2) == sorted([*names, "v1"])
    assert await registry.tag_list(REPO) == sorted([*names, "v1"])


async def test_mount_links_a_blob_across_repositories(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    image = build_image()
    await push_image(registry, REPO, image)
    other = Reference.parse("registry.test/team/other:v1")
    layer = Descriptor.from_json(image.layers[0].descriptor())
    assert await registry.blob_mount(other, layer, "team/app") is True
    assert await registry.blob_head(other, layer) == layer
    unknown = Descriptor("application/octet-stream", Digest.of(b"nowhere"), 7)
    assert await registry.blob_mount(other, unknown, "team/app") is False


async def test_referrers_by_the_api(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    image = build_image()
    await push_image(registry, REPO, image)
    sbom = build_artifact(image.descriptor(), "application/spdx+json", b"{}")
    sig = build_artifact(image.descriptor(), "application/vnd.dev.cosign.signature", b"sig")
    for artifact in (sbom, sig):
        await push_image(registry, REPO.with_digest(artifact.digest).with_tag("x"), artifact)
    found = await registry.referrers(REPO)
    assert {str(d.digest) for d in found} == {sbom.digest, sig.digest}
    only = await registry.referrers(REPO, Digest.parse(image.digest), "application/spdx+json")
    assert [str(d.digest) for d in only] == [sbom.digest]
    assert fallback_tag(Digest.parse(image.digest)) not in await registry.tag_list(REPO)


async def test_referrers_by_the_fallback_tag(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(without_referrers_api(dockyard), credential=ADMIN)
    image = build_image()
    await push_image(registry, REPO, image)
    subject = Digest.parse(image.digest)
    sbom = build_artifact(image.descriptor(), "application/spdx+json", b"{}")
    sig = build_artifact(image.descriptor(), "application/vnd.dev.cosign.signature", b"sig")
    for artifact in (sbom, sig):
        # pushed by digest: the subject's fallback index is kept up to date by manifest_put
        await push_image(
            registry,
            Reference("registry.test", "team/app", None, None).with_digest(artifact.digest),
            artifact,
        )
    assert fallback_tag(subject) in await registry.tag_list(REPO)
    found = await registry.referrers(REPO)
    assert [str(d.digest) for d in found] == [sbom.digest, sig.digest]
    assert found[0].artifact_type == "application/spdx+json"
    only = await registry.referrers(REPO, subject, "application/vnd.dev.cosign.signature")
    assert [str(d.digest) for d in only] == [sig.digest]

    again = parse_manifest(sbom.manifest.data).descriptor()
    assert await registry.referrers_put_fallback(REPO, subject, add=[again]) is None
    removed = await registry.referrers_put_fallback(
        REPO, subject, remove=[Digest.parse(sbom.digest)]
    )
    assert removed is not None
    assert [str(d.digest) for d in await registry.referrers(REPO)] == [sig.digest]
    index = await registry.manifest_get(REPO.with_tag(fallback_tag(subject)))
    assert json.loads(index.raw)["mediaType"] == mt.OCI_INDEX


async def test_tokens_are_reused_across_operations(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    token_requests = 0

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal token_requests
        if scope["type"] == "http" and scope["path"] == "/token":
            token_requests += 1
        await dockyard(scope, receive, send)

    registry = registry_for(counting, credential=ADMIN)
    image = build_image()
    await push_image(registry, REPO, image)
    for _ in range(3):
        await registry.manifest_get(REPO)
        await registry.manifest_head(REPO)
    assert token_requests == 1  # the push token (pull,push) also serves every pull


async def test_delete_a_manifest_and_a_blob(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    image = build_image()
    await push_image(registry, REPO, image)
    pinned = REPO.with_digest(image.digest)
    await registry.manifest_delete(pinned)
    assert await registry.manifest_head(pinned) is None
    with pytest.raises(ManifestUnknown):
        await registry.manifest_delete(pinned)
    layer = Descriptor.from_json(image.layers[0].descriptor())
    await registry.blob_delete(REPO, layer)
    assert await registry.blob_head(REPO, layer) is None


def without_tag_parameters(app: ASGIApp) -> ASGIApp:
    """`app` as a registry that ignores `?tag=`: it never answers `OCI-Tag`."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def filtered(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"oci-tag"]
                message = {**message, "headers": headers}
            await send(message)

        if scope["type"] == "http" and "/manifests/" in scope["path"]:
            scope = {**scope, "query_string": b""}  # the tag parameter goes unread
        await app(scope, receive, filtered)

    return wrapped


async def test_a_sha512_manifest_goes_to_its_tag_by_digest_with_a_tag_parameter(
    dockyard: Any, registry_for: Callable[..., RegistryClient]
) -> None:
    registry = registry_for(dockyard, credential=ADMIN)
    image = build_image({"etc/long": "sha512\n"})
    for blob in image.blobs():
        await registry.blob_put(REPO, Descriptor.from_json(blob.descriptor()), blob.data)
    manifest = parse_manifest(image.manifest.data, algorithm="sha512")
    assert (await registry.manifest_put(REPO, manifest)).digest == manifest.digest
    head = await registry.manifest_head(REPO)
    assert head is not None
    assert head.digest == manifest.digest

    ignoring = registry_for(without_tag_parameters(dockyard), credential=ADMIN)
    other = REPO.with_tag("v2")
    with pytest.raises(Unsupported, match=r"did not confirm tag 'v2'.*tag parameters"):
        await ignoring.manifest_put(other, manifest)
    assert await registry.manifest_head(other) is None
