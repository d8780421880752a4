"""The dpkg database written without dpkg, checked against dpkg itself: the same packages
installed by `dpkg --root` give the same status file, `.list`, `.md5sums` and `.conffiles`;
`dpkg-query` lists what was written, in both forms; `dpkg --verify` accepts the md5sums."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import aiohttp
import pytest
from debian.deb822 import Packages

from dockyard.build.apt.cache import VerifiedCache, fetch_deb
from dockyard.build.apt.deb import Deb
from dockyard.build.apt.dpkgdb import (
    INFO,
    STATUS,
    STATUS_D,
    DatabaseError,
    DatabaseForm,
    InstalledPackage,
    Recorder,
    database_files,
    detect_form,
    list_file,
    md5sums_file,
    normalize_relations,
    status_stanza,
)
from dockyard.build.apt.index import fetch_packages
from dockyard.build.apt.release import fetch_release
from dockyard.build.apt.sources import read_apt_sources
from support.aptrepo import DebSpec, build_deb

BASE = DebSpec("base-files-test", version="12.4", files={"etc/base-release": b"12\n"})
ADDED = [
    DebSpec(
        "zlib-test",
        version="1:1.2.13.dfsg-1",
        architecture="amd64",
        files={"usr/lib/x86_64-linux-gnu/libz-test.so.1": b"\x7fELF" + b"z" * 5000},
        symlinks={"usr/lib/x86_64-linux-gnu/libz-test.so": "libz-test.so.1"},
        fields={
            "Multi-Arch": "same",
            "Source": "zlib-test",
            "Priority": "optional",
            "Section": "libs",
            "Depends": "libc6 (>=2.14)",
            "Homepage": "http://zlib.net/",
        },
        compression="zstd",
    ),
    DebSpec(
        "curl-test",
        version="7.88.1-10+deb12u5",
        architecture="amd64",
        files={
            "usr/bin/curl-test": b"#!/bin/sh\n",
            "etc/curl-test/curlrc": b"verbose\n",
            "usr/share/doc/curl-test/copyright": b"MIT\n",
        },
        modes={"usr/bin/curl-test": 0o755},
        hardlinks={"usr/bin/curl-test-again": "usr/bin/curl-test"},
        conffiles=["/etc/curl-test/curlrc"],
        md5sums=False,  # dpkg makes the md5sums file itself
        fields={
            "Depends": "zlib-test (>= 1:1.1.4),libc6(>=2.34) |libc6.1,  ca-certificates:any",
            "Pre-Depends": "dpkg (>= 0:1.15)",
            "Breaks": "curl-old (< 2)",
            "Essential": "no",
            "Built-Using": "foo (= 1)",
        },
        compression="gzip",
    ),
    DebSpec("aaa-doc-test", version="0.1", files={"usr/share/doc/aaa/README": b"r\n"}),
]


def _dpkg(root: Path, *args: str) -> None:
    subprocess.run(
        ["dpkg", f"--root={root}", "--force-not-root", "--force-depends", *args],
        check=True,
        capture_output=True,
    )


def _empty_root(root: Path) -> Path:
    admin = root / "var/lib/dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_bytes(b"")
    return root


def _recorded(deb: Path) -> InstalledPackage:
    """Read every entry as a layer writer would (in its own sized chunks)."""
    with Deb(deb) as package:
        recorder = Recorder(package.control)
        for entry in package.entries():
            tracked = recorder.track(entry)
            if tracked.stream is not None:
                left = tracked.info.size
                while left:
                    left -= len(tracked.stream.read(min(left, 1000)))
        return recorder.finish()


@pytest.fixture
def debs(tmp_path: Path) -> tuple[Path, list[Path]]:
    out, work = tmp_path / "debs", tmp_path / "work"
    return build_deb(BASE, out, work), [build_deb(spec, out, work) for spec in ADDED]


def test_the_status_form_matches_what_dpkg_writes(
    tmp_path: Path, debs: tuple[Path, list[Path]]
) -> None:
    base_deb, added = debs
    oracle = _empty_root(tmp_path / "dpkg")
    _dpkg(oracle, "--install", str(base_deb))
    base_status = (oracle / STATUS).read_bytes()
    _dpkg(oracle, "--unpack", *map(str, added))
    _dpkg(oracle, "--configure", "--pending")

    files = database_files(DatabaseForm.STATUS, base_status, [_recorded(d) for d in added])

    assert files[STATUS].decode() == (oracle / STATUS).read_text()
    theirs = {
        f"{INFO}/{p.name}": p.read_bytes()
        for p in (oracle / INFO).iterdir()
        if not p.name.startswith(("base-files-test", "format"))
    }
    mine = {path: data for path, data in files.items() if path.startswith(INFO)}
    assert {k: v.decode() for k, v in mine.items()} == {k: v.decode() for k, v in theirs.items()}

    # the written database, in place of dpkg's, is one dpkg itself reads and verifies
    for path, data in files.items():
        (oracle / path).write_bytes(data)
    query = subprocess.run(
        ["dpkg-query", f"--admindir={oracle / 'var/lib/dpkg'}", "-W",
         "-f=${db:Status-Abbrev} ${binary:Package} ${Version}\n"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert query.splitlines() == [
        "ii  aaa-doc-test 0.1",
        "ii  base-files-test 12.4",
        "ii  curl-test 7.88.1-10+deb12u5",
        "ii  zlib-test:amd64 1:1.2.13.dfsg-1",
    ]
    # --verify exits 0 even on a mismatch: what it prints is the verdict
    verify = subprocess.run(
        ["dpkg", f"--root={oracle}", "--verify"], check=True, capture_output=True, text=True
    )
    assert verify.stdout == ""
    (oracle / "usr/bin/curl-test").write_bytes(b"changed\n")
    verify = subprocess.run(
        ["dpkg", f"--root={oracle}", "--verify"], check=True, capture_output=True, text=True
    )
    assert verify.stdout.split() == [
        "??5??????",
        "/usr/bin/curl-test",
        "??5??????",
        "/usr/bin/curl-test-again",
    ]  # fmt: skip  (a hard link: one file, two names)


def test_the_status_d_form_is_read_by_dpkg_query(
    tmp_path: Path, debs: tuple[Path, list[Path]]
) -> None:
    """dpkg reads only `status`; scanners read `status.d/`: each stanza there must be one dpkg
    accepts, so they are checked gathered into a status file."""
    _, added = debs
    files = database_files(DatabaseForm.STATUS_D, None, [_recorded(d) for d in added])
    assert STATUS not in files
    assert set(files) >= {
        f"{STATUS_D}/curl-test",
        f"{STATUS_D}/curl-test.md5sums",
        f"{INFO}/zlib-test:amd64.list",
    }
    admin = _empty_root(tmp_path / "root") / "var/lib/dpkg"
    stanzas = [data for path, data in sorted(files.items()) if path.startswith(STATUS_D)
               and not path.endswith(".md5sums")]  # fmt: skip
    (admin / "status").write_bytes(b"\n".join(stanzas))
    query = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f=${db:Status-Abbrev} ${Package}\n"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert query.splitlines() == ["ii  aaa-doc-test", "ii  curl-test", "ii  zlib-test"]


def test_a_new_database_is_a_status_file(debs: tuple[Path, list[Path]]) -> None:
    _, added = debs
    files = database_files(DatabaseForm.STATUS, None, [_recorded(added[2])])
    assert files[STATUS].startswith(b"Package: aaa-doc-test\nStatus: install ok installed\n")


def test_the_form_is_detected() -> None:
    assert detect_form(["etc/passwd", "var/lib/dpkg/status", "var/lib/dpkg/info/x.list"]) is (
        DatabaseForm.STATUS
    )
    assert detect_form(["./var/lib/dpkg/status.d/libc6", "/etc/os-release"]) is (
        DatabaseForm.STATUS_D
    )
    assert detect_form(["etc/os-release"]) is DatabaseForm.STATUS


def test_relations_are_written_as_dpkg_writes_them() -> None:
    assert normalize_relations("a(>=1)|b:any ,c (<< 0:2)", "x") == "a (>= 1) | b:any, c (<< 2)"
    assert normalize_relations("a (< 1), b (> 2)", "x") == "a (<= 1), b (>= 2)"
    with pytest.raises(DatabaseError, match="not a relation"):
        normalize_relations("a (>= 1", "x")


def test_a_file_not_read_to_its_end_is_named(debs: tuple[Path, list[Path]]) -> None:
    _, added = debs
    with Deb(added[1]) as package:
        recorder = Recorder(package.control)
        for entry in package.entries():
            recorder.track(entry)
        with pytest.raises(DatabaseError, match="was not read to its end"):
            recorder.finish()


# not base-system packages: their stanzas on this machine may carry an older Priority
REAL = ("ca-certificates", "git", "curl", "libcurl4", "libssl3", "tzdata", "jq")


def _host_architecture() -> str:
    return subprocess.check_output(["dpkg", "--print-architecture"], text=True).strip()


def _host_stanzas() -> dict[str, bytes]:
    text = Path("/var/lib/dpkg/status").read_bytes()
    found = {}
    for stanza in re.split(rb"\n\s*\n", text.strip(b"\n")):
        name = stanza.split(b"\n", 1)[0].removeprefix(b"Package: ").decode()
        found[name] = stanza + b"\n"
    return found


@pytest.mark.peers
async def test_real_packages_are_recorded_as_this_machines_dpkg_did(tmp_path: Path) -> None:
    """Debian's own packages at the versions this machine has installed, fetched and verified
    from its archive: the stanza, `.list` and `.md5sums` equal what dpkg wrote here."""
    source = next(iter(read_apt_sources()), None)
    if source is None or _host_architecture() != "amd64":
        pytest.skip("needs this machine's Debian amd64 archive")
    host = _host_stanzas()
    cache = VerifiedCache(tmp_path / "cache")
    async with aiohttp.ClientSession() as session:
        release = await fetch_release(session, source)
        index = await fetch_packages(session, release, "main", "amd64", cache)
        with index.path.open() as handle:
            wanted = {
                p["Package"]: p
                for p in Packages.iter_paragraphs(handle, use_apt_pkg=False)
                if p["Package"] in REAL
                and f"Version: {p['Version']}\n".encode() in host.get(p["Package"], b"")
            }
        if len(wanted) < 2:
            pytest.skip("this machine's versions are no longer in its archive")
        debs = {
            name: await fetch_deb(
                session, cache, source, p["Filename"], int(p["Size"]), p["SHA256"]
            )
            for name, p in wanted.items()
        }
    for name, deb in debs.items():
        package = await asyncio.to_thread(_recorded, deb)
        assert status_stanza(package).decode() == host[name].decode()
        info = Path("/var/lib/dpkg/info")
        assert list_file(package).decode() == (info / f"{package.name}.list").read_text()
        assert md5sums_file(package) == (info / f"{package.name}.md5sums").read_bytes()
