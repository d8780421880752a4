"""Copy options: validation and referrer filters."""

from __future__ import annotations

import pytest

from dockyard.copy import CopyOptions, ReferrerFilter
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest

SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


def referrer(artifact_type: str | None, **annotations: str) -> Descriptor:
    return Descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        Digest.of(b"r"),
        1,
        artifact_type,
        annotations,
    )


def test_platforms_are_parsed_and_checked() -> None:
    options = CopyOptions(platforms=("linux/amd64", "linux/arm/v7"))
    assert options.wanted_platforms == (Platform("linux", "amd64"), Platform("linux", "arm", "v7"))
    with pytest.raises(ValueError, match="linux"):
        CopyOptions(platforms=("linux",))


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        CopyOptions(concurrency=0)


def test_without_filters_every_referrer_is_selected() -> None:
    assert CopyOptions().selects_referrer(referrer(None))


def test_filters_match_artifact_type_and_annotations() -> None:
    by_type = ReferrerFilter(artifact_type=SIG)
    assert by_type.matches(referrer(SIG))
    assert not by_type.matches(referrer("application/spdx+json"))
    by_annotation = ReferrerFilter(annotations={"org.example.kind": "vex", "signed": ""})
    assert by_annotation.matches(referrer(None, **{"org.example.kind": "vex", "signed": "yes"}))
    assert not by_annotation.matches(referrer(None, **{"org.example.kind": "vex"}))
    assert not by_annotation.matches(referrer(None, **{"org.example.kind": "x", "signed": ""}))
    both = CopyOptions(referrer_filters=(by_type, by_annotation))
    assert both.selects_referrer(referrer(SIG))
    assert not both.selects_referrer(referrer("other"))


def test_filters_are_frozen_values() -> None:
    annotations = {"a": "b"}
    selected = ReferrerFilter(annotations=annotations)
    annotations["a"] = "changed"
    assert selected.annotations == {"a": "b"}
    options = CopyOptions(platforms=("linux/amd64",), referrer_filters=(selected,))
    assert hash(options) == hash(
        CopyOptions(
            platforms=("linux/amd64",), referrer_filters=(ReferrerFilter(annotations={"a": "b"}),)
        )
    )
