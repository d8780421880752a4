"""How the tests find this machine's Debian mirror (support/debian.py): apt's own source files,
both formats, never a hard-coded host; the suite with its -updates and -security; apt's names
for the lists it keeps."""

from __future__ import annotations

from pathlib import Path

from support.debian import AptSource, base_sources, machine_sources


def test_sources_are_read_from_both_formats_in_apt_order(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.test/debian trixie main contrib\n"
        "deb-src http://mirror.test/debian trixie main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: trixie-updates trixie-backports\n"
        "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n"
        "Types: deb\nURIs: http://security.test/debian-security\nSuites: trixie-security\n"
        "Components: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://off.test/\nSuites: sid\nComponents: main\n"
    )
    sources = machine_sources(tmp_path)
    assert [(s.uri, s.suite) for s in sources] == [
        ("http://mirror.test/debian", "trixie"),
        ("http://mirror.test/debian", "trixie-updates"),
        ("http://mirror.test/debian", "trixie-backports"),
        ("http://security.test/debian-security", "trixie-security"),
    ]
    assert (
        sources[0].line() == "deb [signed-by=/k.gpg] http://mirror.test/debian trixie main contrib"
    )
    assert [s.suite for s in base_sources(sources)] == [
        "trixie",
        "trixie-updates",
        "trixie-security",
    ]


def test_list_names_are_apts() -> None:
    source = AptSource("http://deb.debian.org/debian/", "bookworm", ("main",))
    assert source.list_name("main", "amd64") == (
        "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
    )
    odd = AptSource("https://user@mirror.test:8080/de_b", "x~y", ("main",))
    assert odd.list_name("main", "arm64") == (
        "mirror.test:8080_de%5fb_dists_x%7ey_main_binary-arm64_Packages"
    )
