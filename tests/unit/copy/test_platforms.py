"""Platform matching, the index filter, and selecting one platform of an index."""

from __future__ import annotations

import pytest

from dockyard.copy.platforms import is_attestation, keeps, matches, select
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestUnknown
from dockyard.oci.manifest import parse_manifest
from support.ocilayout import index_bytes

P = Platform.parse


def entry(platform: str | None, **annotations: str) -> Descriptor:
    return Descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        Digest.of((platform or "none").encode() + repr(annotations).encode()),
        10,
        annotations=annotations,
        platform=P(platform) if platform else None,
    )


@pytest.mark.parametrize(
    ("platform", "wanted", "expected"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm/v7", "linux/arm", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/aarch64", "linux/arm64", True),
        ("linux/amd64", "linux/arm64", False),
        ("windows/amd64", "linux/amd64", False),
        ("linux/amd64/v3", "linux/amd64", True),
        ("linux/amd64", "linux/amd64/v2", False),
    ],
)
def test_matches(platform: str, wanted: str, expected: bool) -> None:
    assert matches(P(platform), P(wanted)) is expected


def test_os_version_must_match_when_wanted() -> None:
    server = Platform("windows", "amd64", None, "10.0.20348.1")
    assert matches(server, P("windows/amd64"))
    assert not matches(server, Platform("windows", "amd64", None, "10.0.17763.1"))


def test_the_filter_always_keeps_attestations_and_entries_without_a_platform() -> None:
    wanted = [P("linux/amd64")]
    assert keeps(entry("linux/amd64"), wanted)
    assert not keeps(entry("linux/arm64"), wanted)
    assert keeps(entry("unknown/unknown"), wanted)
    assert keeps(
        entry("linux/arm64", **{"vnd.docker.reference.type": "attestation-manifest"}), wanted
    )
    assert keeps(entry(None), wanted)
    assert keeps(entry("linux/arm64"), [])


def test_is_attestation() -> None:
    assert is_attestation(entry("unknown/unknown"))
    assert not is_attestation(entry("linux/amd64"))


def test_select_picks_the_platform_and_never_an_attestation() -> None:
    amd64, arm64, att = entry("linux/amd64"), entry("linux/arm64/v8"), entry("unknown/unknown")
    index = parse_manifest(index_bytes([d.to_json() for d in (att, amd64, arm64)]))
    assert select(index, P("linux/arm64")).digest == arm64.digest
    with pytest.raises(ManifestUnknown, match=r"linux/amd64, linux/arm64/v8"):
        select(index, P("linux/s390x"))
    with pytest.raises(ManifestUnknown):
        select(index, P("unknown/unknown"))
