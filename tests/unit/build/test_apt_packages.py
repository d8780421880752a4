"""Reading package indexes and dpkg databases (build/apt/packages.py): stanzas, relations,
Debian's version order (checked against dpkg itself), candidates across several indexes, and
both database layouts (`status` and distroless `status.d/`)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.packages import (
    Installed,
    Package,
    Relation,
    compare_versions,
    parse_relations,
    read_packages,
    stanzas,
)

MAIN = """\
Package: curl
Version: 7.88.1-10+deb12u5
Architecture: amd64
Source: curl (7.88.1-10+deb12u5)
Multi-Arch: foreign
Priority: optional
Section: web
Installed-Size: 500
Depends: libc6 (>= 2.34),
 libcurl4 (= 7.88.1-10+deb12u5), zlib1g (>= 1:1.1.4)
Provides: http-client, curl-bin (= 7.88)
Description: command line tool
 long text that must not become a field
Filename: pool/main/c/curl/curl_7.88.1-10+deb12u5_amd64.deb
Size: 315000
SHA256: aa

Package: mawk
Version: 1.3.4.20200120-3.1
Architecture: amd64
Priority: required
Provides: awk

Package: arm-only
Version: 1
Architecture: arm64

Package: docs
Version: 2
Architecture: all
"""

SECURITY = """\
Package: curl
Version: 7.88.1-10+deb12u8
Architecture: amd64
Filename: pool/updates/main/c/curl/curl_7.88.1-10+deb12u8_amd64.deb
"""


def test_a_stanza_keeps_the_fields_a_lock_and_a_resolver_need() -> None:
    curl = read_packages(MAIN, "main")[0]
    assert (curl.name, curl.version, curl.architecture, curl.multi_arch) == (
        "curl",
        "7.88.1-10+deb12u5",
        "amd64",
        "foreign",
    )
    assert (curl.source, curl.source_version, curl.installed_size, curl.size) == (
        "curl",
        "7.88.1-10+deb12u5",
        500,
        315000,
    )
    assert curl.filename.endswith("_amd64.deb")
    assert curl.sha256 == "aa"
    assert curl.origin == "main"
    # A folded field is one field; a description's continuation is not a field of its own.
    assert [g[0].name for g in curl.depends] == ["libc6", "libcurl4", "zlib1g"]
    assert curl.depends[1] == (Relation("libcurl4", None, "=", "7.88.1-10+deb12u5"),)
    assert curl.provides == (Relation("http-client"), Relation("curl-bin", None, "=", "7.88"))
    assert "long text" not in next(stanzas(MAIN))


def test_relations_keep_alternatives_and_qualifiers() -> None:
    parsed = parse_relations("python3:any (>= 3.11~), default-mta | mail-transport-agent")
    assert parsed == (
        (Relation("python3", "any", ">=", "3.11~"),),
        (Relation("default-mta"), Relation("mail-transport-agent")),
    )
    assert str(parsed[0][0]) == "python3:any (>= 3.11~)"


def test_deb822_field_names_are_case_insensitive() -> None:
    package = Package.from_fields({"PACKAGE": "x", "version": "1", "Architecture": "all"})
    assert (package.name, package.version, package.architecture) == ("x", "1", "all")
    with pytest.raises(ValueError, match="lacks Package or Version"):
        Package.from_fields({"Package": "x"}, "Packages")


PAIRS = [
    ("1.0", "1.0-0"),
    ("1.0~rc1", "1.0"),
    ("1.0", "1.0+b1"),
    ("1:1.0", "2.0"),
    ("2.0-1", "2.0-1~bpo1"),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
    ("1.2.3a", "1.2.3"),
    ("0~", "0"),
    ("1.0.0", "1.0"),
    ("a", "A"),
    ("1.0-1.1", "1.0-1"),
]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg to compare with")
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_versions_compare_as_dpkg_compares_them(a: str, b: str) -> None:
    def dpkg(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0

    expected = -1 if dpkg("lt") else (1 if dpkg("gt") else 0)
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_the_candidate_is_the_highest_version_of_every_index_for_the_architecture() -> None:
    index = PackageIndex.from_texts([("main", MAIN), ("security", SECURITY)], "amd64")
    curl = index.candidate("curl")
    assert curl is not None
    assert (curl.version, curl.origin) == ("7.88.1-10+deb12u8", "security")
    assert [p.version for p in index.versions("curl")] == ["7.88.1-10+deb12u8", "7.88.1-10+deb12u5"]
    assert index.version("curl", "7.88.1-10+deb12u5") is not None
    assert "arm-only" not in index
    assert "docs" in index
    assert [(p.name, r.name) for p, r in index.providers("awk")] == [("mawk", "awk")]
    assert index.close_matches("curll")[0] == "curl"
    # The order apt numbers names in: packages and the names their relations mention.
    assert index.rank("curl") < index.rank("libc6") < index.rank("mawk")


def test_installed_reads_a_status_file_and_skips_removed_packages(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(
        textwrap.dedent("""\
            Package: libc6
            Status: install ok installed
            Version: 2.36-9
            Architecture: amd64
            Provides: libc-bin-compat

            Package: old
            Status: deinstall ok config-files
            Version: 1
            Architecture: amd64

            Package: libc6
            Status: install ok installed
            Version: 2.36-9
            Architecture: i386
            """)
    )
    installed = Installed.read(status, "amd64")
    assert [p.name for p in installed] == ["libc6"]
    assert "old" not in installed
    libc = installed.get("libc6")
    assert libc is not None
    assert libc.architecture == "amd64"
    assert [p.name for p, _ in installed.providers("libc-bin-compat")] == ["libc6"]


def test_installed_reads_a_distroless_status_d_folder(tmp_path: Path) -> None:
    folder = tmp_path / "status.d"
    folder.mkdir()
    (folder / "base").write_text("Package: base-files\nVersion: 12.4\nArchitecture: amd64\n")
    (folder / "base.md5sums").write_text("d41d8cd98f00b204e9800998ecf8427e  etc/issue\n")
    (folder / "tzdata").write_text(
        "Package: tzdata\nStatus: install ok installed\nVersion: 2024a\nArchitecture: all\n"
    )
    installed = Installed.read(folder, "amd64")
    assert sorted(p.name for p in installed) == ["base-files", "tzdata"]
