"""Descriptors and platforms (image-spec descriptor.md, image-index.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, ManifestInvalid

MAX_SIZE = 2**63 - 1  # descriptor sizes are int64 in the image spec


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform an index entry runs on; `unknown/unknown` marks attestations."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse `os/arch[/variant]`, as in `linux/arm64/v8`."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch or os/arch/variant")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("os"), str)
            or not isinstance(data.get("architecture"), str)
        ):
            raise ManifestInvalid("platform must be an object with string os and architecture")
        variant = data.get("variant")
        os_version = data.get("os.version")
        return cls(
            data["os"],
            data["architecture"],
            variant if isinstance(variant, str) else None,
            os_version if isinstance(os_version, str) else None,
        )

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content by media type, digest and size."""

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "descriptor") -> Descriptor:
        """Validate and read a descriptor object; `where` names it in error messages."""
        if not isinstance(data, dict):
            raise ManifestInvalid(f"{where} must be a JSON object")
        media_type = data.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestInvalid(f"{where}.size must be a non-negative integer")
        if size > MAX_SIZE:
            raise ManifestInvalid(
                f"{where}.size is larger than {MAX_SIZE}, the largest size (int64) the image "
                "spec allows"
            )
        raw_digest = data.get("digest")
        if not isinstance(raw_digest, str):
            raise ManifestInvalid(f"{where}.digest must be a string")
        try:
            digest = Digest.parse(raw_digest)
        except DigestInvalid as exc:
            raise ManifestInvalid(f"{where}.digest: {exc.message}") from exc
        artifact_type = data.get("artifactType")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestInvalid(f"{where}.annotations must map strings to strings")
        platform = data.get("platform")
        return cls(
            media_type,
            digest,
            size,
            artifact_type if isinstance(artifact_type, str) else None,
            annotations,
            Platform.from_json(platform) if platform is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as the spec's JSON object."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            platform: dict[str, Any] = {
                "architecture": self.platform.architecture,
                "os": self.platform.os,
            }
            if self.platform.variant:
                platform["variant"] = self.platform.variant
            if self.platform.os_version:
                platform["os.version"] = self.platform.os_version
            out["platform"] = platform
        return out
