"""What a copy should include and how hard it should work: regctl's `image copy` flags and
regsync's per-entry settings, as one frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dockyard.oci.descriptor import Descriptor, Platform

DEFAULT_CONCURRENCY = 4
DEFAULT_IMAGE_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class ReferrerFilter:
    """Selects referrers: by `artifact_type` (None: any) and `annotations`, each of which must
    be present with that value (an empty value only requires the key), as regclient matches."""

    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))

    def matches(self, desc: Descriptor) -> bool:
        """Whether the referrer `desc` (as the referrers API lists it) is selected."""
        if self.artifact_type is not None and desc.artifact_type != self.artifact_type:
            return False
        for key, value in self.annotations.items():
            if key not in desc.annotations or (value and desc.annotations[key] != value):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """Options of one image copy.

    - `platforms`: keep only these entries of an index (`os/arch[/variant]`); entries without a
      platform and attestation manifests (`unknown/unknown`) are always kept. Empty: all. The
      index itself is copied byte for byte (its digest and signatures hold), so the target must
      accept sparse indexes (Dockyard's `sparse_indexes`, on for mirrors; distribution v3's
      validation.manifests.indexes.platforms: none); one that checks every entry refuses it
      (`SparseIndexRefused` says so), as with regctl.
    - `referrers`: copy the referrers of every manifest copied, recursively (referrers of
      referrers too); `referrer_filters` select which (any filter matching keeps a referrer;
      none: all).
    - `digest_tags`: also copy the source repository's tags `<alg>-<hex>.*` of every manifest
      copied (cosign's `.sig`, `.att`, `.sbom`).
    - `force_recursive`: push every manifest again and check every blob, even when the target
      already has the manifest (repairs a target that lost content).
    - `fast_check`: when the target already has a manifest, trust that it has everything below
      it: no HEAD for its children or blobs. Referrers and digest tags are still checked when
      asked (attestations are added after an image is published). It wins over
      `force_recursive` for a manifest the target already has, as in regctl.
    - `include_external`: also copy layers that name `urls` (foreign layers), which are
      skipped by default as regclient does.
    - `concurrency`: blob transfers in flight; `image_concurrency`: manifest-level requests
      (reads, HEADs, referrer listings, pushes) in flight.
    """

    platforms: tuple[str, ...] = ()
    referrers: bool = False
    referrer_filters: tuple[ReferrerFilter, ...] = ()
    digest_tags: bool = False
    force_recursive: bool = False
    fast_check: bool = False
    include_external: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    image_concurrency: int = DEFAULT_IMAGE_CONCURRENCY

    def __post_init__(self) -> None:
        object.__setattr__(self, "platforms", tuple(self.platforms))
        object.__setattr__(self, "referrer_filters", tuple(self.referrer_filters))
        for platform in self.platforms:
            Platform.parse(platform)  # raises ValueError naming the bad one
        if self.concurrency < 1 or self.image_concurrency < 1:
            raise ValueError("concurrency and image_concurrency must be at least 1")

    @property
    def wanted_platforms(self) -> tuple[Platform, ...]:
        """`platforms` parsed."""
        return tuple(Platform.parse(p) for p in self.platforms)

    def selects_referrer(self, desc: Descriptor) -> bool:
        """Whether the referrer `desc` passes `referrer_filters` (always, without filters)."""
        return not self.referrer_filters or any(f.matches(desc) for f in self.referrer_filters)
