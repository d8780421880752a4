"""Which entries of an index a platform filter keeps, and which entry a platform selects."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.errors import ManifestUnknown
from dockyard.oci.manifest import Manifest

UNKNOWN = "unknown"
REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION_MANIFEST = "attestation-manifest"

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}


def _normal(platform: Platform) -> tuple[str, str, str]:
    os = platform.os.lower()
    arch = platform.architecture.lower()
    arch = _ARCH_ALIASES.get(arch, arch)
    variant = (platform.variant or _DEFAULT_VARIANT.get(arch, "")).lower()
    return os, arch, variant


def matches(platform: Platform, wanted: Platform) -> bool:
    """Whether `platform` is `wanted`: same OS and architecture (aliases and default variants
    normalized, so `linux/arm64` is `linux/arm64/v8`); a wanted variant or OS version must
    match, none wanted accepts any."""
    os, arch, variant = _normal(platform)
    want_os, want_arch, want_variant = _normal(wanted)
    if (os, arch) != (want_os, want_arch):
        return False
    if wanted.variant is not None and variant != want_variant:
        return False
    return wanted.os_version is None or platform.os_version == wanted.os_version


def is_attestation(desc: Descriptor) -> bool:
    """Whether an index entry is an attestation manifest (BuildKit's `unknown/unknown`)."""
    if desc.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST:
        return True
    platform = desc.platform
    return platform is not None and platform.os == UNKNOWN and platform.architecture == UNKNOWN


def keeps(desc: Descriptor, wanted: Sequence[Platform]) -> bool:
    """Whether a filter for `wanted` platforms keeps the index entry `desc`: every entry when
    nothing is wanted, and always entries without a platform and attestation manifests."""
    if not wanted or desc.platform is None or is_attestation(desc):
        return True
    return any(matches(desc.platform, w) for w in wanted)


def select(index: Manifest, wanted: Platform) -> Descriptor:
    """The entry of `index` for `wanted` (regctl's `--platform`); attestations never match.
    Raises `ManifestUnknown` naming the platforms the index has."""
    images = [e for e in index.children if e.platform is not None and not is_attestation(e)]
    for entry in images:
        if entry.platform is not None and matches(entry.platform, wanted):
            return entry
    have = sorted({str(e.platform) for e in images})
    raise ManifestUnknown(
        f"index {index.digest} has no manifest for platform {wanted}; it has: "
        + (", ".join(have) or "no platforms")
    )
