"""The repository `bench/mirror.py` mirrors, pushed to a source registry, and the check that a
mirror of it is complete: 30 tags (by default), each an index of 2 platforms whose images
have 4 layers of 2 MiB (the first 2 are base layers shared by every tag of a platform), and 3
referrers per tag (an SBOM and a signature of the index, a provenance of its amd64 image) in
a separate attestations repository."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.ocilayout builds the images

from dockyard.client.hosts import Client  # noqa: E402
from dockyard.client.registry import RegistryClient  # noqa: E402
from dockyard.client.settings import ClientConfig, RegistrySettings, TLSMode  # noqa: E402
from dockyard.oci.descriptor import Descriptor  # noqa: E402
from dockyard.oci.digest import Digest  # noqa: E402
from dockyard.oci.manifest import Manifest, parse_manifest  # noqa: E402
from dockyard.oci.reference import Reference  # noqa: E402
from support.ocilayout import (  # noqa: E402
    Image,
    build_artifact,
    build_image,
    index_bytes,
    random_layer,
)

MiB = 1024 * 1024
LAYER_SIZE = 2 * MiB
PLATFORMS = ("linux/amd64", "linux/arm64")
REPOSITORY = "library/app"
ATTESTATIONS = "attestations/app"
MIRROR = "mirror/app"


@dataclass
class Source:
    tags: int
    referrers: int = 0
    blobs: int = 0
    bytes: int = 0
    digests: dict[str, Digest] = field(default_factory=dict)


def _client(*hosts: str) -> RegistryClient:
    config = ClientConfig()
    for host in hosts:
        config.set(RegistrySettings(name=host, tls=TLSMode.DISABLED))
    return RegistryClient(Client(config))


def _at(ref: Reference, digest: Digest | str) -> Reference:
    return Reference(ref.registry, ref.repository, None, Digest.parse(str(digest)))


class _Pusher:
    """Pushes images, each distinct blob once per repository (distribution 2.8 can fail two
    uploads of the same blob at once)."""

    def __init__(self, registry: RegistryClient, parallel: int = 8) -> None:
        self.registry = registry
        self.gate = asyncio.Semaphore(parallel)
        self.blobs: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def _blob(self, ref: Reference, data: bytes, desc: Descriptor) -> None:
        async with self.gate:
            if await self.registry.blob_head(ref, desc) is None:
                await self.registry.blob_put(ref, desc, data)

    async def push(self, ref: Reference, image: Image) -> Manifest:
        waits = []
        for blob in image.blobs():
            key = (ref.name, blob.digest)
            if key not in self.blobs:
                desc = Descriptor.from_json(blob.descriptor())
                self.blobs[key] = asyncio.create_task(self._blob(ref, blob.data, desc))
            waits.append(self.blobs[key])
        await asyncio.gather(*waits)
        manifest = parse_manifest(image.manifest.data)
        await self.registry.manifest_put(ref, manifest)
        return manifest


async def generate(host: str, tags: int) -> Source:
    """Push the repository and its attestations to the source registry."""
    source = Source(tags)
    registry = _client(host)
    pusher = _Pusher(registry)
    repo = Reference.parse(f"{host}/{REPOSITORY}")
    attestations = Reference.parse(f"{host}/{ATTESTATIONS}")
    base = {p: [random_layer(LAYER_SIZE, f"base-{p}-{i}") for i in range(2)] for p in PLATFORMS}
    seen: set[str] = set()

    async def one(number: int) -> None:
        tag = f"v{number}"
        images = [
            build_image(
                {"etc/release": f"app {tag} {p}\n"},
                platform=p,
                layers=[
                    *base[p],
                    *(random_layer(LAYER_SIZE - 4096, f"{tag}-{p}-{i}") for i in range(2)),
                ],
            )
            for p in PLATFORMS
        ]
        for image in images:
            await pusher.push(_at(repo, image.digest), image)
            for blob in image.blobs():
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    source.blobs += 1
                    source.bytes += blob.size
        index = parse_manifest(index_bytes([image.descriptor() for image in images]))
        await registry.manifest_put(repo.with_tag(tag), index)
        source.digests[tag] = index.digest
        amd64 = parse_manifest(images[0].manifest.data)
        for subject, kind, payload in (
            (index, "application/spdx+json", f"sbom of {tag}"),
            (index, "application/vnd.dev.cosign.artifact.sig.v1+json", f"signature of {tag}"),
            (amd64, "application/vnd.in-toto+json", f"provenance of {tag} amd64"),
        ):
            artifact = build_artifact(subject.descriptor().to_json(), kind, payload.encode())
            await pusher.push(_at(attestations, artifact.digest), artifact)
            source.referrers += 1

    try:
        await asyncio.gather(*(one(n) for n in range(1, tags + 1)))
    finally:
        await registry.close()
    return source


async def verify(source_host: str, target_host: str, source: Source, referrers: bool) -> str:
    """Compare every tag's digest on the target with the source's; count referrers."""
    registry = _client(source_host, target_host)
    repo = Reference.parse(f"{target_host}/{MIRROR}")
    wrong = 0
    found_referrers = 0
    try:
        for tag, digest in source.digests.items():
            head = await registry.manifest_head(repo.with_tag(tag))
            wrong += head is None or head.digest != digest
            if referrers:
                index = await registry.manifest_get(_at(repo, digest))
                for subject in (digest, index.children[0].digest):
                    found_referrers += len(await registry.referrers(_at(repo, subject), subject))
    finally:
        await registry.close()
    verdict = "all digests equal" if not wrong else f"{wrong} tags WRONG"
    if referrers:
        verdict += f", {found_referrers}/{source.referrers} referrers"
    return verdict
