"""Package sources: chosen from the settings by distribution and codename, or read from an
/etc/apt folder (Deb822 `.sources` and one-line `.list` files) as apt reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dockyard.build.apt.sources import AptSource, SourceError, read_apt_sources, sources_for
from dockyard.config import PackageSource

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def test_settings_fill_in_the_codename_and_keep_its_pockets() -> None:
    settings = [
        PackageSource(
            distribution="debian",
            uri="http://deb.debian.org/debian/",
            suites=["{codename}", "{codename}-updates"],
            keyring=KEYRING,
        ),
        PackageSource(
            distribution="debian",
            uri="http://deb.debian.org/debian-security",
            suites=["bookworm-security", "trixie-security"],
            keyring=KEYRING,
        ),
        PackageSource(
            distribution="ubuntu",
            uri="http://archive.ubuntu.com/ubuntu",
            suites=["{codename}"],
            keyring=Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg"),
        ),
    ]
    found = sources_for(settings, "debian", "bookworm")
    assert [(s.uri, s.suite) for s in found] == [
        ("http://deb.debian.org/debian", "bookworm"),
        ("http://deb.debian.org/debian", "bookworm-updates"),
        ("http://deb.debian.org/debian-security", "bookworm-security"),
    ]
    assert found[0].components == ("main",)
    assert (
        found[0].dists_url("InRelease") == "http://deb.debian.org/debian/dists/bookworm/InRelease"
    )


def test_a_setting_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        PackageSource(distribution="debian", uri="ftp://x", suites=["a"], keyring=KEYRING)
    with pytest.raises(ValidationError, match="extra"):
        PackageSource.model_validate(
            {"distribution": "debian", "uri": "http://x", "suites": ["a"], "keyring": "/k", "x": 1}
        )


def test_a_machines_apt_sources_are_read(tmp_path: Path) -> None:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# comment\n"
        "deb [arch=amd64,arm64 signed-by=/k/one.gpg] http://one.example/debian bookworm main c\n"
        "deb-src http://one.example/debian bookworm main\n"
        "deb http://two.example/debian bookworm-updates main # trailing\n"
    )
    (etc / "sources.list.d" / "b.sources").write_text(
        "Types: deb deb-src\n"
        "# a comment inside the stanza\n"
        "URIs: http://three.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /k/three.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://off.example/debian\n"
        "Suites: bookworm\n"
        "Components: main\n"
        "Enabled: no\n"
    )
    (etc / "sources.list.d" / "c.list.disabled").write_text("deb http://never.example/ x main\n")
    found = read_apt_sources(etc)
    one, two = "http://one.example/debian", "http://two.example/debian"
    three = "http://three.example/debian"
    assert found == [
        AptSource(one, "bookworm", ("main", "c"), ("amd64", "arm64"), Path("/k/one.gpg")),
        AptSource(two, "bookworm-updates", ("main",), (), etc / "trusted.gpg.d"),
        AptSource(three, "bookworm", ("main",), (), Path("/k/three.gpg")),
        AptSource(three, "bookworm-updates", ("main",), (), Path("/k/three.gpg")),
    ]


def test_this_machines_apt_sources_are_read() -> None:
    found = read_apt_sources()
    assert found, "this machine's apt has no deb source"
    assert all(source.uri.startswith(("http://", "https://")) for source in found)


def test_a_package_file_name_cannot_leave_the_archive() -> None:
    source = AptSource("http://x/debian", "bookworm", ("main",), (), KEYRING)
    assert source.pool_url("pool/main/c/curl/curl_1_amd64.deb") == (
        "http://x/debian/pool/main/c/curl/curl_1_amd64.deb"
    )
    with pytest.raises(SourceError, match="leaves the archive"):
        source.pool_url("pool/../../etc/passwd")
    with pytest.raises(SourceError, match="flat repositories"):
        AptSource("http://x/debian", "./", (), (), KEYRING)
