"""Source content for copy tests: a multi-platform index with a BuildKit attestation, an
entry without a platform, referrers (and a referrer of a referrer) and cosign digest tags."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from support.ocilayout import Image, build_artifact, build_image, layer
from unit.copy.fakes import MemoryTarget, as_descriptor, store, store_index

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
PROVENANCE = "application/vnd.in-toto+json"

SRC = Reference.parse("src.test/library/app:v1")
DST = Reference.parse("dst.test/mirror/app:v1")


def manifest_of(image: Image) -> Manifest:
    return parse_manifest(image.manifest.data)


@dataclass
class Scene:
    """What `multi_platform` put in the source."""

    index: Manifest
    amd64: Image
    arm64: Image
    attestation: Image
    plain: Image  # an index entry without a platform

    @property
    def digest(self) -> Digest:
        return self.index.digest


def multi_platform(source: MemoryTarget, ref: Reference = SRC, seed: str = "app") -> Scene:
    """An index tagged `ref.tag`: linux/amd64 and linux/arm64 images sharing a base layer,
    an attestation manifest (`unknown/unknown`) for amd64, and an entry without a platform."""
    base = layer({"etc/os-release": f"base {seed}\n"})
    amd64 = build_image({"bin/app": f"{seed} amd64"}, platform="linux/amd64", layers=[base])
    arm64 = build_image({"bin/app": f"{seed} arm64"}, platform="linux/arm64", layers=[base])
    attestation = build_image(
        {"provenance.json": f"{seed} provenance"},
        platform={"architecture": "unknown", "os": "unknown"},
    )
    plain = build_image({"README": f"{seed} no platform"})
    for image in (amd64, arm64, attestation, plain):
        store(source, ref, image)
    entries = [
        amd64.descriptor(),
        arm64.descriptor(),
        attestation.descriptor(
            annotations={
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": amd64.digest,
            }
        ),
        plain.manifest.descriptor(),
    ]
    index = store_index(source, ref, entries, tag=ref.tag)
    return Scene(index, amd64, arm64, attestation, plain)


def attach(
    place: MemoryTarget,
    repo: Reference,
    subject: Manifest,
    artifact_type: str,
    payload: bytes,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """Store an artifact whose subject is `subject` in `repo`'s repository."""
    artifact = build_artifact(
        as_descriptor(subject), artifact_type, payload, annotations=annotations
    )
    return store(place, repo, artifact)


def digest_tag(subject: Digest, suffix: str) -> str:
    return f"{subject.algorithm}-{subject.encoded}.{suffix}"
