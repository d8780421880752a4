"""The copy engine between real registries over loopback: CNCF distribution 2.8 (no referrers
API: fallback tags) and Dockyard (referrers API), with a multi-platform index, an attestation
manifest, signatures and an SBOM as referrers (and a referrer of a referrer), referrers in a
separate repository and registry, and cosign-style digest tags. Digests are checked by reading
the raw manifests back, and image digests also with `skopeo inspect --raw` (not referrer
indexes: skopeo rewrites those)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dockyard.client.settings import Credential
from dockyard.copy import CopyError, CopyOptions, copy_image
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag
from support.ocilayout import build_artifact, build_image, digest_of, index_bytes, layer
from support.peers import DockerRegistry, DockerRegistryFactory, DockyardServer, Skopeo
from support.remote import Connect, Peer, bounded, push

pytestmark = pytest.mark.peers

TEST_TIMEOUT = 180.0
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
PROVENANCE = "application/vnd.in-toto+json"


@pytest.fixture
def dockyard(dockyard_server: DockyardServer, connect: Connect) -> Peer:
    password = dockyard_server.admin_password
    credential = Credential(username="admin", password=password)
    return Peer(
        dockyard_server.host, connect(dockyard_server.host, credential), f"admin:{password}"
    )


@pytest.fixture
def distribution(docker_registry: DockerRegistry, connect: Connect) -> Peer:
    return Peer(docker_registry.host, connect(docker_registry.host))


@pytest.fixture
def scout(docker_registry_factory: DockerRegistryFactory, connect: Connect) -> Peer:
    """A second distribution registry: the separate home of attestations (the seed's
    registry.scout.docker.com)."""
    registry = docker_registry_factory()
    return Peer(registry.host, connect(registry.host))


# --- source content ----------------------------------------------------------------------------


def at(ref: Reference, digest: Digest | str) -> Reference:
    digest = digest if isinstance(digest, Digest) else Digest.parse(digest)
    return Reference(ref.registry, ref.repository, None, digest)


@dataclass
class Source:
    """What `publish` pushed: an index over two platforms and an attestation manifest, and
    referrers: a signature of the index, an SBOM of amd64 and a signature of that SBOM."""

    index: Manifest
    amd64: Manifest
    arm64: Manifest
    attestation: Manifest
    signature: Manifest
    sbom: Manifest
    sbom_signature: Manifest

    def manifests(self) -> list[Manifest]:
        return [self.index, self.amd64, self.arm64, self.attestation, *self.referrers()]

    def referrers(self) -> list[Manifest]:
        return [self.signature, self.sbom, self.sbom_signature]


async def publish(
    peer: Peer, ref: Reference, referrers: tuple[Peer, Reference] | None = None
) -> Source:
    """Push the index tagged `ref.tag` and its referrers (to `referrers` when given)."""
    base = layer({"etc/os-release": "hardened base\n"})
    images = {
        p: build_image({"bin/app": p}, platform=p, layers=[base])
        for p in ("linux/amd64", "linux/arm64")
    }
    manifests = {p: await push(peer, at(ref, i.digest), i) for p, i in images.items()}
    attestation = build_image(
        {"provenance.json": "{}"}, platform={"architecture": "unknown", "os": "unknown"}
    )
    attested = await push(peer, at(ref, attestation.digest), attestation)
    entries = [i.descriptor() for i in images.values()] + [
        attestation.descriptor(
            annotations={
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": images["linux/amd64"].digest,
            }
        )
    ]
    index = parse_manifest(index_bytes(entries))
    await peer.registry.manifest_put(ref, index)
    where, repo = referrers or (peer, ref)
    signature = await attach(where, repo, index, SIGNATURE, b"index signature")
    sbom = await attach(where, repo, manifests["linux/amd64"], SBOM, b'{"spdxVersion":"2.3"}')
    sbom_signature = await attach(where, repo, sbom, SIGNATURE, b"sbom signature")
    return Source(
        index,
        manifests["linux/amd64"],
        manifests["linux/arm64"],
        attested,
        signature,
        sbom,
        sbom_signature,
    )


async def attach(
    peer: Peer, repo: Reference, subject: Manifest, artifact_type: str, payload: bytes
) -> Manifest:
    artifact = build_artifact(subject.descriptor().to_json(), artifact_type, payload)
    return await push(peer, at(repo, artifact.digest), artifact)


async def assert_same_bytes(peer: Peer, repo: Reference, manifests: list[Manifest]) -> None:
    for manifest in manifests:
        got = await peer.registry.manifest_get(at(repo, manifest.digest))
        assert got.raw == manifest.raw, f"{manifest.digest} changed in {repo.name}"


async def referrer_digests(peer: Peer, repo: Reference, subject: Manifest) -> set[Digest]:
    return {d.digest for d in await peer.registry.referrers(repo, subject.digest)}


def assert_skopeo_agrees(skopeo: Skopeo, peer: Peer, ref: Reference, source: Source) -> None:
    raw = skopeo.inspect_raw(f"docker://{ref}", creds=peer.creds)
    assert digest_of(raw) == str(source.index.digest)
    for image in (source.amd64, source.arm64):
        raw = skopeo.inspect_raw(f"docker://{at(ref, image.digest)}", creds=peer.creds)
        assert digest_of(raw) == str(image.digest)


# --- tests -------------------------------------------------------------------------------------


@bounded
async def test_from_distribution_to_dockyard_and_back(
    distribution: Peer, dockyard: Peer, skopeo: Skopeo
) -> None:
    src = distribution.ref("dhi/python:3.13")
    source = await publish(distribution, src)
    cosign_tag = f"{fallback_tag(source.index.digest)}.sig"
    cosign = await push(distribution, src.with_tag(cosign_tag), build_image({"sig": "cosign"}))
    options = CopyOptions(referrers=True, digest_tags=True)

    dst = dockyard.ref("mirror/python:3.13")
    result = await copy_image(distribution.registry, src, dockyard.registry, dst, options)
    assert result.digest == source.index.digest
    assert result.referrers_copied == 3
    await assert_same_bytes(dockyard, dst, [*source.manifests(), cosign])
    # Dockyard lists them by its referrers API, and keeps no fallback tag
    assert await referrer_digests(dockyard, dst, source.index) == {source.signature.digest}
    assert await referrer_digests(dockyard, dst, source.amd64) == {source.sbom.digest}
    assert await referrer_digests(dockyard, dst, source.sbom) == {source.sbom_signature.digest}
    tags = await dockyard.registry.tag_list(dst)
    assert sorted(tags) == sorted(["3.13", cosign_tag])
    tagged = await dockyard.registry.manifest_head(dst.with_tag(cosign_tag))
    assert tagged is not None
    assert tagged.digest == cosign.digest
    assert_skopeo_agrees(skopeo, dockyard, dst, source)

    again = await copy_image(distribution.registry, src, dockyard.registry, dst, options)
    assert not again.changed

    back = distribution.ref("returned/python:3.13")
    result = await copy_image(dockyard.registry, dst, distribution.registry, back, options)
    assert result.manifests_copied == len(source.manifests()) + 1
    await assert_same_bytes(distribution, back, [*source.manifests(), cosign])
    # distribution has no referrers API: the client kept the fallback tag indexes
    tags = await distribution.registry.tag_list(back)
    assert fallback_tag(source.index.digest) in tags
    assert fallback_tag(source.amd64.digest) in tags
    assert cosign_tag in tags
    assert await referrer_digests(distribution, back, source.sbom) == {source.sbom_signature.digest}
    assert_skopeo_agrees(skopeo, distribution, back, source)


@bounded
async def test_referrers_from_a_separate_registry_to_a_separate_repository(
    distribution: Peer, scout: Peer, dockyard: Peer
) -> None:
    src = distribution.ref("dhi/node:24")
    attestations = scout.ref("org/node:unused")
    source = await publish(distribution, src, referrers=(scout, attestations))
    dst = dockyard.ref("mirror/node:24")
    out = dockyard.ref("mirror/node-attestations:unused")

    result = await copy_image(
        distribution.registry,
        src,
        dockyard.registry,
        dst,
        CopyOptions(referrers=True),
        referrers_source=(scout.registry, attestations),
        referrers_target=(dockyard.registry, out),
    )
    assert result.referrers_copied == 3
    await assert_same_bytes(dockyard, dst, [source.index, source.amd64, source.arm64])
    await assert_same_bytes(dockyard, out, source.referrers())
    assert await referrer_digests(dockyard, out, source.amd64) == {source.sbom.digest}
    assert await referrer_digests(dockyard, out, source.sbom) == {source.sbom_signature.digest}
    assert await referrer_digests(dockyard, dst, source.amd64) == set()

    # attestations added after publishing are found on the next run; nothing else moves
    late = await attach(scout, attestations, source.arm64, PROVENANCE, b"late provenance")
    again = await copy_image(
        distribution.registry,
        src,
        dockyard.registry,
        dst,
        CopyOptions(referrers=True, fast_check=True),
        referrers_source=(scout.registry, attestations),
        referrers_target=(dockyard.registry, out),
    )
    assert (again.manifests_copied, again.referrers_copied) == (1, 1)
    assert await referrer_digests(dockyard, out, source.arm64) == {late.digest}


@bounded
async def test_blobs_are_mounted_between_repositories_of_dockyard(
    distribution: Peer, dockyard: Peer
) -> None:
    src = distribution.ref("dhi/go:1")
    await publish(distribution, src)
    first = dockyard.ref("mirror/go:1")
    copied = await copy_image(distribution.registry, src, dockyard.registry, first)
    second = dockyard.ref("team/go:1")
    mounted = await copy_image(dockyard.registry, first, dockyard.registry, second)
    assert mounted.blobs_copied == 0
    assert mounted.blobs_mounted == copied.blobs_copied
    assert mounted.bytes_copied == 0


@bounded
async def test_a_platform_subset_keeps_the_index_digest_where_sparse_indexes_are_on(
    distribution: Peer, dockyard: Peer, dockyard_server: DockyardServer
) -> None:
    src = distribution.ref("dhi/ruby:3")
    source = await publish(distribution, src)
    dst = dockyard.ref("mirror/ruby:3")
    subset = CopyOptions(platforms=("linux/amd64",), referrers=True)
    with pytest.raises(CopyError) as caught:
        await copy_image(distribution.registry, src, dockyard.registry, dst, subset)
    message = str(caught.value)
    assert "left out by the platform filter" in message
    assert "linux/arm64" in message
    assert "dockyard admin repo set mirror/ruby --sparse-indexes on" in message
    assert "MANIFEST_BLOB_UNKNOWN" in message or "ManifestBlobUnknown" in message
    # what was kept is there; the index, which names the missing platform, is not
    await assert_same_bytes(dockyard, dst, [source.amd64, source.attestation])
    assert await dockyard.registry.manifest_head(dst) is None

    shown = dockyard_server.cli("admin", "repo", "set", "mirror/ruby", "--sparse-indexes", "on")
    assert "sparse indexes on" in shown.stdout
    result = await copy_image(distribution.registry, src, dockyard.registry, dst, subset)
    assert result.digest == source.index.digest
    head = await dockyard.registry.manifest_head(dst)
    assert head is not None
    assert head.digest == source.index.digest  # so the upstream signature still names it
    await assert_same_bytes(dockyard, dst, [source.index, source.amd64, source.signature])
    assert await dockyard.registry.manifest_head(at(dst, source.arm64.digest)) is None
    assert source.signature.digest in await referrer_digests(dockyard, dst, source.index)


@bounded
async def test_a_sha512_image_copied_to_a_tag_keeps_its_digest(
    distribution: Peer, dockyard: Peer
) -> None:
    """A tag push is digested with sha256, so the client pushes a sha512 manifest by digest
    with the tag as a parameter, which Dockyard applies."""
    image = build_image({"bin/app": "sha512"})
    manifest = parse_manifest(image.manifest.data, algorithm="sha512")
    src = dockyard.ref("team/long:1")
    for blob in image.blobs():
        await dockyard.registry.blob_put(src, Descriptor.from_json(blob.descriptor()), blob.data)
    await dockyard.registry.manifest_put(src, manifest)
    head = await dockyard.registry.manifest_head(src)
    assert head is not None
    assert head.digest == manifest.digest
    copied = await copy_image(
        dockyard.registry, src, dockyard.registry, dockyard.ref("copy/long:1")
    )
    assert copied.digest == manifest.digest
    head = await dockyard.registry.manifest_head(dockyard.ref("copy/long:1"))
    assert head is not None
    assert head.digest == manifest.digest
    # distribution 2.8 digests every manifest with sha256, so it refuses this one outright
    with pytest.raises(CopyError, match=r"DigestInvalid.*manifests/sha512:"):
        await copy_image(
            dockyard.registry, src, distribution.registry, distribution.ref("x/long:1")
        )
