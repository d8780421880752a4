"""The async OCI client against real registries over loopback: Dockyard (Bearer tokens, the
referrers API) and CNCF distribution 2.8 (no auth, no referrers API: the fallback tag), plus a
fault-injecting proxy in front of distribution (500s, 429 with Retry-After, connection resets,
cut bodies and flipped bytes)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from dockyard.client.referrers import LIST_AFTER
from dockyard.client.settings import Credential
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, Unauthorized
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag
from support.ocilayout import (
    Image,
    build_artifact,
    build_image,
    digest_of,
    index_bytes,
    random_layer,
)
from support.peers import HOST, DockerRegistry, DockerRegistryFactory, DockyardServer, Skopeo
from support.remote import Connect, Peer, bounded

pytestmark = pytest.mark.peers


@pytest.fixture
def dockyard(dockyard_server: DockyardServer, connect: Connect) -> Peer:
    credential = Credential(username="admin", password=dockyard_server.admin_password)
    return Peer(
        dockyard_server.host,
        connect(dockyard_server.host, credential),
        f"admin:{dockyard_server.admin_password}",
    )


@pytest.fixture
def distribution(docker_registry: DockerRegistry, connect: Connect) -> Peer:
    return Peer(docker_registry.host, connect(docker_registry.host))


@pytest.fixture(params=["dockyard", "distribution"])
def peer(request: pytest.FixtureRequest) -> Peer:
    found: Peer = request.getfixturevalue(request.param)
    return found


async def push(peer: Peer, ref: Reference, image: Image, chunk_size: int = 0) -> Manifest:
    for blob in image.blobs():
        desc = Descriptor.from_json(blob.descriptor())
        if await peer.registry.blob_head(ref, desc) is None:
            await peer.registry.blob_put(ref, desc, blob.data, chunk_size=chunk_size)
    manifest = parse_manifest(image.manifest.data)
    await peer.registry.manifest_put(ref, manifest)
    return manifest


# --- both registries -------------------------------------------------------------------------


@bounded
async def test_images_and_an_index_keep_their_digests(peer: Peer, skopeo: Skopeo) -> None:
    repo = peer.ref("client/app:v1")
    big = random_layer(3 << 20, seed="client-big")
    amd64 = build_image({"etc/arch": "amd64"}, layers=[big])
    arm64 = build_image({"etc/arch": "arm64"}, platform="linux/arm64")
    await push(peer, repo.with_tag("amd64"), amd64, chunk_size=1 << 20)  # chunked PATCHes
    await push(peer, repo.with_tag("arm64"), arm64)  # one PUT per blob
    raw = index_bytes([amd64.descriptor(), arm64.descriptor()])
    await peer.registry.manifest_put(repo, parse_manifest(raw))

    got = await peer.registry.manifest_get(repo)
    assert got.raw == raw
    assert got.media_type == mt.OCI_INDEX
    head = await peer.registry.manifest_head(repo)
    assert head is not None
    assert str(head.digest) == digest_of(raw)
    child = await peer.registry.manifest_get(repo.with_digest(amd64.digest))
    assert child.raw == amd64.manifest.data
    layer = Descriptor.from_json(big.descriptor())
    pulled = bytearray()
    async for chunk in peer.registry.blob_get(repo, layer):
        pulled += chunk
    assert pulled == big.data
    # a real peer reads the same bytes
    inspected = skopeo.inspect_raw(f"docker://{repo}", creds=peer.creds)
    assert digest_of(inspected) == digest_of(raw)


@bounded
async def test_tag_list_follows_pages(peer: Peer) -> None:
    repo = peer.ref("client/tags:v0")
    manifest = await push(peer, repo, build_image({"a": "tags"}))
    names = sorted({"v0", *(f"v{i}" for i in range(1, 7))})
    for name in names[1:]:
        await peer.registry.manifest_put(repo.with_tag(name), manifest)
    assert sorted(await peer.registry.tag_list(repo, page_size=2)) == names
    assert sorted(await peer.registry.tag_list(repo)) == names


@bounded
async def test_mount_across_repositories(peer: Peer) -> None:
    source = peer.ref("client/source:v1")
    image = build_image({"a": "mount me"})
    await push(peer, source, image)
    target = peer.ref("client/target:v1")
    for blob in image.blobs():
        desc = Descriptor.from_json(blob.descriptor())
        assert await peer.registry.blob_mount(target, desc, "client/source") is True
        assert await peer.registry.blob_head(target, desc) == desc
    unknown = Descriptor("application/octet-stream", Digest.of(b"not anywhere"), 12)
    assert await peer.registry.blob_mount(target, unknown, "client/source") is False


@bounded
async def test_basic_auth_on_distribution(
    docker_registry_factory: DockerRegistryFactory, connect: Connect
) -> None:
    registry = docker_registry_factory(users={"alice": "s3cret"})
    alice = Peer(
        registry.host, connect(registry.host, Credential(username="alice", password="s3cret"))
    )
    repo = alice.ref("client/private:v1")
    manifest = await push(alice, repo, build_image({"a": "private"}))
    assert (await alice.registry.manifest_get(repo)).raw == manifest.raw
    intruder = connect(registry.host, Credential(username="alice", password="wrong"))
    with pytest.raises(Unauthorized):
        await intruder.manifest_get(repo)
    with pytest.raises(Unauthorized):
        await connect(registry.host).manifest_get(repo)


@bounded
async def test_delete_by_digest(peer: Peer) -> None:
    repo = peer.ref("client/deleted:v1")
    image = build_image({"a": "deleted"})
    await push(peer, repo, image)
    pinned = Reference(repo.registry, repo.repository, None, Digest.parse(image.digest))
    await peer.registry.manifest_delete(pinned)
    assert await peer.registry.manifest_head(pinned) is None
    assert await peer.registry.manifest_head(repo) is None


# --- referrers ---------------------------------------------------------------------------------


async def push_referrers(peer: Peer, repo: Reference) -> tuple[Image, list[Image]]:
    image = build_image({"a": "subject"})
    await push(peer, repo, image)
    sbom = build_artifact(image.descriptor(), "application/spdx+json", b'{"spdx":1}')
    sig = build_artifact(image.descriptor(), "application/vnd.dev.cosign.signature", b"sig")
    for artifact in (sbom, sig):
        await push(
            peer,
            Reference(repo.registry, repo.repository, None, Digest.parse(artifact.digest)),
            artifact,
        )
    return image, [sbom, sig]


@bounded
async def test_referrers_by_the_api_on_dockyard(dockyard: Peer) -> None:
    repo = dockyard.ref("client/referred:v1")
    image, artifacts = await push_referrers(dockyard, repo)
    found = await dockyard.registry.referrers(repo)
    assert {str(d.digest) for d in found} == {a.digest for a in artifacts}
    signatures = await dockyard.registry.referrers(
        repo, artifact_type="application/vnd.dev.cosign.signature"
    )
    assert [str(d.digest) for d in signatures] == [artifacts[1].digest]
    # OCI-Subject confirmed the API: no fallback tag was written
    subject = Digest.parse(image.digest)
    assert fallback_tag(subject) not in await dockyard.registry.tag_list(repo)


@bounded
async def test_referrers_by_the_fallback_tag_on_distribution(
    distribution: Peer, skopeo: Skopeo
) -> None:
    repo = distribution.ref("client/referred:v1")
    image, artifacts = await push_referrers(distribution, repo)
    subject = Digest.parse(image.digest)
    tag = fallback_tag(subject)
    assert tag in await distribution.registry.tag_list(repo)
    found = await distribution.registry.referrers(repo)
    assert [str(d.digest) for d in found] == [a.digest for a in artifacts]
    assert [d.artifact_type for d in found] == [a.artifact_type for a in artifacts]
    index = json.loads(skopeo.inspect_raw(f"docker://{repo.with_tag(tag)}"))
    assert index["mediaType"] == mt.OCI_INDEX
    assert [m["digest"] for m in index["manifests"]] == [a.digest for a in artifacts]

    pushed = await distribution.registry.referrers_put_fallback(
        repo, subject, remove=[Digest.parse(artifacts[0].digest)]
    )
    assert pushed is not None
    remaining = await distribution.registry.referrers(repo)
    assert [str(d.digest) for d in remaining] == [artifacts[1].digest]


# --- faults ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """Break the next `times` requests whose method is `method` and path contains `path`."""

    method: str
    path: str
    kind: str  # "500" | "429" | "reset" | "cut" | "flip"
    times: int = 1


@dataclass
class FaultProxy:
    """A reverse proxy on 127.0.0.1 to a registry that injects faults on request."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    host: str = ""

    def take(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.times and fault.method == request.method and fault.path in request.path:
                fault.times -= 1
                return fault
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, request.headers.get("Range")))
        fault = self.take(request)
        kind = fault.kind if fault else None
        if kind == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if kind in ("500", "429"):
            await request.read()
            headers = {"Retry-After": "1"} if kind == "429" else {}
            return web.json_response(
                {"errors": [{"code": "UNKNOWN" if kind == "500" else "TOOMANYREQUESTS"}]},
                status=int(kind),
                headers=headers,
            )
        status, headers, body = await self.forward(request)
        if kind == "flip" and body:
            flipped = bytearray(body)
            flipped[len(body) // 2] ^= 0x01
            body = bytes(flipped)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = int(headers.get("Content-Length", len(body)))
        await response.prepare(request)
        if kind == "cut":
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        if request.method != "HEAD":
            await response.write(body)
        await response.write_eof()
        return response

    async def forward(self, request: web.Request) -> tuple[int, dict[str, str], bytes]:
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        data = await request.read()
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=data if data else None,
                allow_redirects=False,
            ) as upstream,
        ):
            body = await upstream.read()
            out = {
                k: v.replace(self.upstream, f"http://{self.host}")
                for k, v in upstream.headers.items()
                if k.lower() not in ("transfer-encoding", "connection", "content-length")
            }
            if "Content-Length" in upstream.headers:
                out["Content-Length"] = upstream.headers["Content-Length"]
            return upstream.status, out, body


@pytest_asyncio.fixture
async def proxy(docker_registry: DockerRegistry) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(docker_registry.url)
    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{path:.*}", fault_proxy.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    assert runner.addresses
    fault_proxy.host = f"{HOST}:{runner.addresses[0][1]}"
    try:
        yield fault_proxy
    finally:
        await runner.cleanup()


@pytest.fixture
def via_proxy(proxy: FaultProxy, connect: Connect) -> Peer:
    return Peer(proxy.host, connect(proxy.host))


@bounded
async def test_a_flipped_byte_is_detected(proxy: FaultProxy, via_proxy: Peer) -> None:
    repo = via_proxy.ref("client/faults:v1")
    image = build_image(layers=[random_layer(256 << 10, seed="flip")])
    await push(via_proxy, repo, image)
    layer = Descriptor.from_json(image.layers[0].descriptor())
    proxy.faults.append(Fault("GET", f"/blobs/{layer.digest}", "flip"))
    received: list[bytes] = []

    async def pull() -> None:
        async for chunk in via_proxy.registry.blob_get(repo, layer):
            received.append(chunk)

    with pytest.raises(DigestInvalid, match="bytes were discarded"):
        await pull()
    assert sum(map(len, received)) < layer.size
    # the same blob through a clean connection is intact
    pulled = b"".join([c async for c in via_proxy.registry.blob_get(repo, layer)])
    assert pulled == image.layers[0].data


@bounded
async def test_500s_and_429_are_retried(proxy: FaultProxy, via_proxy: Peer) -> None:
    repo = via_proxy.ref("client/faults:v1")
    image = build_image({"a": "retry"})
    proxy.faults += [
        Fault("POST", "/blobs/uploads/", "500", times=2),
        Fault("PUT", "/manifests/", "429"),
        Fault("GET", "/manifests/", "500"),
    ]
    manifest = await push(via_proxy, repo, image)
    started = time.monotonic()
    got = await via_proxy.registry.manifest_get(repo)
    assert got.raw == manifest.raw
    assert all(fault.times == 0 for fault in proxy.faults)
    puts = [path for method, path, _ in proxy.seen if method == "PUT" and "/manifests/" in path]
    assert len(puts) == 2  # the 429, then the retry after Retry-After: 1
    assert time.monotonic() - started < 30


@bounded
async def test_connection_resets_are_retried(proxy: FaultProxy, via_proxy: Peer) -> None:
    repo = via_proxy.ref("client/faults:v1")
    image = build_image(layers=[random_layer(512 << 10, seed="reset")])
    proxy.faults += [
        Fault("HEAD", "/blobs/", "reset"),
        Fault("PUT", "/blobs/uploads/", "reset"),  # the monolithic PUT: a new session is opened
        Fault("GET", "/manifests/", "reset", times=2),
    ]
    manifest = await push(via_proxy, repo, image)
    assert (await via_proxy.registry.manifest_get(repo)).raw == manifest.raw
    assert all(fault.times == 0 for fault in proxy.faults)


@bounded
async def test_a_cut_download_resumes_with_range(proxy: FaultProxy, via_proxy: Peer) -> None:
    repo = via_proxy.ref("client/faults:v1")
    image = build_image(layers=[random_layer(1 << 20, seed="cut")])
    await push(via_proxy, repo, image)
    layer = Descriptor.from_json(image.layers[0].descriptor())
    proxy.faults.append(Fault("GET", f"/blobs/{layer.digest}", "cut"))
    pulled = b"".join([c async for c in via_proxy.registry.blob_get(repo, layer)])
    assert pulled == image.layers[0].data
    ranges = [r for method, path, r in proxy.seen if method == "GET" and str(layer.digest) in path]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")


@bounded
async def test_a_failed_chunk_resumes_from_the_registry_range(
    proxy: FaultProxy, via_proxy: Peer
) -> None:
    repo = via_proxy.ref("client/faults:v1")
    layer = random_layer(3 << 20, seed="chunks")
    desc = Descriptor.from_json(layer.descriptor())
    proxy.faults += [
        Fault("PATCH", "/blobs/uploads/", "500"),
        Fault("PATCH", "/blobs/uploads/", "reset"),
    ]
    await via_proxy.registry.blob_put(repo, desc, layer.data, chunk_size=1 << 20)
    pulled = b"".join([c async for c in via_proxy.registry.blob_get(repo, desc)])
    assert pulled == layer.data
    statuses = [method for method, path, _ in proxy.seen if "/blobs/uploads/" in path]
    assert statuses.count("GET") == 2  # one status query per failed PATCH


@bounded
async def test_many_fallback_lookups_cost_one_tag_listing(
    proxy: FaultProxy, via_proxy: Peer
) -> None:
    """Without the referrers API, a sync asks for the referrers of every image; after a few
    lookups one tag listing answers for the subjects that have no fallback tag."""
    repo = via_proxy.ref("client/bulk:v1")
    image, artifacts = await push_referrers(via_proxy, repo)
    plain = [build_image({"plain": str(n)}) for n in range(3 * LIST_AFTER)]
    for n, other in enumerate(plain):
        await push(via_proxy, via_proxy.ref(f"client/bulk:plain{n}"), other)
    proxy.seen.clear()

    def pinned(digest: str) -> Reference:
        return Reference(repo.registry, repo.repository, None, Digest.parse(digest))

    for other in plain:
        assert await via_proxy.registry.referrers(pinned(other.digest)) == []
    found = await via_proxy.registry.referrers(pinned(image.digest))
    assert [str(d.digest) for d in found] == [a.digest for a in artifacts]
    fallback_gets = [p for m, p, _ in proxy.seen if m == "GET" and "/manifests/sha256-" in p]
    listings = [p for m, p, _ in proxy.seen if m == "GET" and p.endswith("/tags/list")]
    # the first LIST_AFTER - 1 lookups ask directly; then one listing; the subject that has a
    # fallback tag is the only one fetched after it
    assert len(listings) == 1
    assert len(fallback_gets) == LIST_AFTER - 1 + 1

    # a fallback index written meanwhile is seen through the same listing
    late = build_artifact(plain[0].descriptor(), "application/spdx+json", b'{"late":1}')
    await push(via_proxy, pinned(late.digest), late)
    found = await via_proxy.registry.referrers(pinned(plain[0].digest))
    assert [str(d.digest) for d in found] == [late.digest]
