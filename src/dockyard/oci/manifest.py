"""Manifests and indexes: parsed from, and always kept as, the exact bytes received."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestInvalid, PayloadTooLarge

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
_SCHEMA1 = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest or index with the raw bytes it was parsed from.

    `blobs` are the blobs it references (config and layers), `children` the manifests an index
    references, `subject` the manifest it refers to, `artifact_type` the value the referrers API
    reports for it (its own `artifactType`, else the config's media type).
    """

    raw: bytes
    digest: Digest
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.media_type)

    def descriptor(self) -> Descriptor:
        """This manifest as a descriptor (what an index or the referrers API lists)."""
        return Descriptor(
            self.media_type, self.digest, len(self.raw), self.artifact_type, self.annotations
        )


def parse_manifest(
    raw: bytes, content_type: str | None = None, algorithm: str = "sha256"
) -> Manifest:
    """Validate `raw` as a manifest or index and describe it; raise `ManifestInvalid` saying why.

    `content_type` is the Content-Type it was sent with; when the body names a `mediaType` the two
    must agree.
    """
    if len(raw) > MAX_MANIFEST_SIZE:
        raise PayloadTooLarge(
            f"manifest is {len(raw)} bytes; at most {MAX_MANIFEST_SIZE} bytes (4 MiB) are accepted"
        )
    try:
        body = json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers past Python's digit limit;
        # RecursionError comes from nesting deeper than the parser's stack allows
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = _media_type(body, _base_type(content_type))
    version = body.get("schemaVersion")
    if not isinstance(version, int) or isinstance(version, bool) or version != 2:
        # an integer: 2.0 equals 2 in Python but is not what the spec allows
        raise ManifestInvalid('manifest schemaVersion must be 2 (the integer, not 2.0 or "2")')
    annotations = _annotations(body)
    subject = (
        Descriptor.from_json(body["subject"], "subject")
        if body.get("subject") is not None
        else None
    )
    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    digest = Digest.of(raw, algorithm)
    if mt.is_index(media_type):
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid("index must have a manifests array")
        children = tuple(
            Descriptor.from_json(entry, f"manifests[{i}]") for i, entry in enumerate(entries)
        )
        return Manifest(raw, digest, media_type, (), children, subject, artifact_type, annotations)
    config = Descriptor.from_json(body.get("config"), "config")
    layers = body.get("layers")
    if not isinstance(layers, list):
        raise ManifestInvalid("image manifest must have a layers array")
    blobs = (
        config,
        *(Descriptor.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
    )
    if artifact_type is None and media_type == mt.OCI_MANIFEST:
        artifact_type = config.media_type
    return Manifest(raw, digest, media_type, blobs, (), subject, artifact_type, annotations)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object as a dict; `ManifestInvalid` naming a key that appears twice in it.

    Parsers disagree on which of two values counts (Python's and Go's take the last, others
    the first), so a registry that accepted one could be shown a different manifest than
    the client that verifies it.
    """
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ManifestInvalid(
                f"manifest has the key {key!r} twice in one object: clients disagree on which "
                "value counts, so a manifest must name each key once",
                {"key": key},
            )
        seen.add(key)
    raise AssertionError("unreachable: a shorter dict has a repeated key")


def _base_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _media_type(body: dict[str, Any], content_type: str | None) -> str:
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    for candidate in (declared, content_type):
        if candidate in _SCHEMA1:
            raise ManifestInvalid(
                "Docker schema1 manifests are not supported: push schema2 or OCI manifests"
            )
    if declared and content_type and content_type in mt.MANIFESTS and declared != content_type:
        raise ManifestInvalid(
            f"manifest mediaType {declared!r} does not match Content-Type {content_type!r}"
        )
    media_type = declared or (content_type if content_type in mt.MANIFESTS else None)
    if media_type is None:
        # neither says: an index lists manifests, an image manifest has a config
        media_type = mt.OCI_INDEX if "manifests" in body else mt.OCI_MANIFEST
    if media_type not in mt.MANIFESTS:
        raise ManifestInvalid(
            f"unsupported manifest media type {media_type!r}: expected one of "
            + ", ".join(sorted(mt.MANIFESTS))
        )
    return media_type


def _annotations(body: dict[str, Any]) -> dict[str, str]:
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ManifestInvalid("annotations must map strings to strings")
    return annotations
