"""The closure apk add would install: names, so:/cmd: provides, versions, install_if and
conflicts, against what the base has; what cannot be installed is refused by field."""

from __future__ import annotations

import pytest

from dockyard.build.apk.index import ApkPackage
from dockyard.build.apk.resolve import resolve
from dockyard.build.apt.resolution import (
    UnknownPackage,
    UnknownVersion,
    Unresolvable,
    VirtualPackage,
)


def pkg(name: str, version: str = "1.0-r0", **fields: str) -> ApkPackage:
    lines = [("C", "Q1" + "A" * 27 + "="), ("P", name), ("V", version)]
    lines += list(fields.items())
    return ApkPackage.from_fields(lines, "https://repo.example/main")


INDEX = [
    pkg("curl", "8.9.1-r0", D="so:libcurl.so.4 ca-certificates-bundle", p="cmd:curl=8.9.1-r0"),
    pkg("libcurl", "8.9.1-r0", D="so:libz.so.1", p="so:libcurl.so.4=4.8.0"),
    pkg("zlib", "1.3.1-r0", p="so:libz.so.1=1.3.1"),
    pkg("zlib", "1.2.13-r0", p="so:libz.so.1=1.2.13"),
    pkg("ca-certificates-bundle", "20240705-r0"),
    pkg("curl-doc", "8.9.1-r0", i="curl=8.9.1-r0 docs"),
    pkg("docs", "0.2-r6"),
    pkg("busybox-binsh", "1.36.1-r29", p="/bin/sh cmd:sh=1.36.1-r29", k="100"),
    pkg("dash-binsh", "0.5.12-r3", p="/bin/sh cmd:sh=0.5.12-r3", k="60"),
    pkg("mawk", "1.3.4-r3", p="awk"),
    pkg("gawk", "5.3.0-r1", p="awk"),
    pkg("openssl", "3.3.2-r0", D="!libressl"),
    pkg("libressl", "3.8.2-r0"),
]


def _names(requests: list[str], installed: list[ApkPackage] | None = None) -> list[str]:
    resolution = resolve(requests, INDEX, installed or [])
    return [f"{c.package.name}-{c.package.version}" for c in resolution.choices]


def test_dependencies_are_followed_through_so_provides() -> None:
    assert _names(["curl"]) == [
        "curl-8.9.1-r0",
        "libcurl-8.9.1-r0",
        "ca-certificates-bundle-20240705-r0",
        "zlib-1.3.1-r0",  # the newest provider of so:libz.so.1
    ]


def test_what_the_base_has_is_left_alone() -> None:
    base = [pkg("zlib", "1.2.13-r0", p="so:libz.so.1=1.2.13")]
    resolution = resolve(["curl"], INDEX, base)
    assert "zlib" not in [c.package.name for c in resolution.choices]
    assert [p.name for p in resolution.satisfied_by_base] == ["zlib"]


def test_a_cmd_provide_and_a_version_constraint_are_met() -> None:
    assert _names(["cmd:curl"])[0] == "curl-8.9.1-r0"
    assert _names(["zlib<1.3"]) == ["zlib-1.2.13-r0"]
    assert _names(["zlib~1.2"]) == ["zlib-1.2.13-r0"]


def test_the_provider_with_the_highest_priority_is_chosen() -> None:
    assert _names(["cmd:sh"]) == ["busybox-binsh-1.36.1-r29"]


def test_a_virtual_without_a_priority_must_be_named() -> None:
    with pytest.raises(VirtualPackage) as refused:
        resolve(["curl", "awk"], INDEX, [])
    assert refused.value.field == "contents.packages[1]"
    assert refused.value.providers == ["gawk", "mawk"]


def test_install_if_pulls_companions_once_their_conditions_hold() -> None:
    assert "curl-doc-8.9.1-r0" not in _names(["curl"])
    assert _names(["curl", "docs"])[-1] == "curl-doc-8.9.1-r0"


def test_a_conflict_with_the_base_is_refused() -> None:
    with pytest.raises(Unresolvable, match=r"openssl 3\.3\.2-r0 conflicts with libressl"):
        resolve(["openssl"], INDEX, [pkg("libressl", "3.8.2-r0")])


def test_an_unknown_version_lists_the_versions_there_are() -> None:
    with pytest.raises(UnknownVersion) as refused:
        resolve(["zlib=1.4-r0"], INDEX, [])
    assert refused.value.available == ["1.3.1-r0", "1.2.13-r0"]


def test_an_unknown_name_gets_the_closest_names() -> None:
    with pytest.raises(UnknownPackage) as refused:
        resolve(["culr"], INDEX, [])
    assert "curl" in refused.value.suggestions


def test_an_upgrade_that_a_base_package_forbids_is_refused() -> None:
    base = [pkg("zlib", "1.2.13-r0"), pkg("minizip", "1.2.13-r0", D="zlib=1.2.13-r0")]
    with pytest.raises(Unresolvable, match="which the base's minizip needs"):
        resolve(["zlib>=1.3"], INDEX, base)


def test_an_upgrade_of_a_base_package_is_an_upgrade() -> None:
    resolution = resolve(["zlib>=1.3"], INDEX, [pkg("zlib", "1.2.13-r0")])
    (choice,) = resolution.choices
    assert (choice.action, choice.installed and choice.installed.version) == (
        "upgrade",
        "1.2.13-r0",
    )
