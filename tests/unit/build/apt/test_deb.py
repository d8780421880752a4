"""A .deb read in process: every compression dpkg-deb makes, the same entries and bytes that
`dpkg-deb -x` extracts, the control files; unsafe entries refused by name."""

from __future__ import annotations

import io
import stat
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from dockyard.build.apt.deb import Deb, DebError, UnsafeEntry, normalize
from support.aptrepo import DebSpec, build_deb

SPEC = DebSpec(
    "sample",
    version="1:2.3-4",
    architecture="amd64",
    files={
        "usr/bin/sample": b"#!/bin/sh\necho sample\n",
        "usr/share/doc/sample/copyright": b"free\n" * 100,
        "etc/sample.conf": b"x=1\n",
        "usr/lib/sample/big.bin": bytes(range(256)) * 4096,
    },
    modes={"usr/bin/sample": 0o4755},
    symlinks={
        "usr/bin/sample-link": "sample",
        "usr/lib/sample/doc": "../../share/doc/sample",
        "usr/bin/abs": "/etc/sample.conf",
    },
    conffiles=["/etc/sample.conf"],
    scripts={"postinst": "#!/bin/sh\nexit 0\n"},
    fields={"Depends": "libc6 (>= 2.34)", "Multi-Arch": "foreign"},
)


def _extracted(deb: Path, into: Path) -> dict[str, tuple[str, bytes | str, int]]:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    found: dict[str, tuple[str, bytes | str, int]] = {}
    for path in into.rglob("*"):
        name = str(path.relative_to(into))
        mode = path.lstat().st_mode
        if path.is_symlink():
            found[name] = ("link", str(path.readlink()), 0)
        elif path.is_dir():
            found[name] = ("dir", b"", stat.S_IMODE(mode))
        else:
            found[name] = ("file", path.read_bytes(), stat.S_IMODE(mode))
    return found


@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd", "none"])
def test_entries_are_what_dpkg_deb_extracts(tmp_path: Path, compression: str) -> None:
    spec = DebSpec(**{**SPEC.__dict__, "compression": compression})
    deb = build_deb(spec, tmp_path / "out", tmp_path / "work")
    with Deb(deb) as package:
        assert package.data_compression == {"gzip": "gz", "zstd": "zst", "none": ""}.get(
            compression, compression
        )
        control = package.control
        mine: dict[str, tuple[str, bytes | str, int]] = {}
        for entry in package.entries():
            info = entry.info
            assert info.name == entry.path
            if info.issym():
                mine[entry.path] = ("link", info.linkname, 0)
            elif info.isdir():
                mine[entry.path] = ("dir", b"", info.mode)
            else:
                assert entry.stream is not None
                mine[entry.path] = ("file", entry.stream.read(), info.mode)
    assert mine == _extracted(deb, tmp_path / "root")
    assert control.package == "sample"
    assert control.fields["Version"] == "1:2.3-4"
    assert control.fields["Depends"] == "libc6 (>= 2.34)"
    assert control.conffiles == ("/etc/sample.conf",)
    assert control.scripts == ("postinst",)
    assert control.md5sums is not None
    assert b"usr/bin/sample\n" in control.md5sums


def test_entries_may_be_skipped_unread(tmp_path: Path) -> None:
    deb = build_deb(SPEC, tmp_path / "out", tmp_path / "work")
    with Deb(deb) as package:
        paths = [entry.path for entry in package.entries()]
    assert paths[0] == "etc"  # the root folder ("./") is not an entry
    assert "usr/lib/sample/big.bin" in paths


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out += header.encode() + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def _tar(entries: list[tarfile.TarInfo], compression: str = "gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for info in entries:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return buffer.getvalue()


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 1
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def _hand_made(
    tmp_path: Path, entries: list[tarfile.TarInfo], compression: str = "xz", cut: bool = False
) -> Path:
    control = tarfile.TarInfo("./control")
    text = b"Package: evil\nVersion: 1\nArchitecture: all\n"
    control.size = len(text)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.addfile(control, io.BytesIO(text))
    deb = tmp_path / "evil.deb"
    data = _tar(entries, compression)
    if cut:
        data = data[: len(data) // 2]
    deb.write_bytes(
        _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", buffer.getvalue()),
             (f"data.tar.{compression}", data)])
    )  # fmt: skip
    return deb


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry("/etc/passwd"), "absolute path"),
        (_entry("./usr/../../etc/passwd"), r"'\.\.' component"),
        (_entry("./usr/bin/x", tarfile.SYMTYPE, "../../../etc/shadow"), "leaves the root"),
        (_entry("./x", tarfile.SYMTYPE, ".."), "leaves the root"),
        (_entry("./dev/sda", tarfile.BLKTYPE), "device node"),
        (_entry("./dev/null", tarfile.CHRTYPE), "device node"),
        (_entry("./usr/bin/y", tarfile.LNKTYPE, "/etc/shadow"), "absolute path"),
        (_entry("./usr/bin/y", tarfile.LNKTYPE, "./etc/shadow"), "not an earlier file"),
    ],
)
def test_unsafe_entries_are_refused(tmp_path: Path, entry: tarfile.TarInfo, message: str) -> None:
    deb = _hand_made(tmp_path, [_entry("./usr/", tarfile.DIRTYPE), entry])
    with Deb(deb) as package, pytest.raises(UnsafeEntry, match=message) as caught:
        list(package.entries())
    assert str(caught.value).startswith("evil: ")


def test_safe_links_are_kept(tmp_path: Path) -> None:
    deb = _hand_made(
        tmp_path,
        [
            _entry("./usr/bin/x"),
            _entry("./usr/bin/x-hard", tarfile.LNKTYPE, "./usr/bin/x"),
            _entry("./usr/bin/up", tarfile.SYMTYPE, "../../etc"),
            _entry("./usr/bin/abs", tarfile.SYMTYPE, "/../../etc"),
            _entry("./run/fifo", tarfile.FIFOTYPE),
        ],
    )
    with Deb(deb) as package:
        entries = {entry.path: entry.info for entry in package.entries()}
    assert entries["usr/bin/x-hard"].linkname == "usr/bin/x"
    assert entries["usr/bin/up"].linkname == "../../etc"
    assert entries["run/fifo"].isfifo()


def test_names_are_normalized() -> None:
    assert normalize("./usr/bin/x", "p") == "usr/bin/x"
    assert normalize("usr/share/", "p") == "usr/share"
    assert normalize("./", "p") == ""
    with pytest.raises(UnsafeEntry):
        normalize("usr//bin", "p")


def test_not_a_deb_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "x.deb"
    other.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(DebError, match="no ar archive header"):
        Deb(other)
    other.write_bytes(_ar([("control.tar.gz", b""), ("debian-binary", b"2.0\n")]))
    with pytest.raises(DebError, match="expected debian-binary"):
        Deb(other)


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2"])
def test_a_truncated_member_is_refused(tmp_path: Path, compression: str) -> None:
    big = tarfile.TarInfo("./usr/big")
    big.size = 1 << 20
    deb = _hand_made(tmp_path, [big], compression, cut=True)
    with Deb(deb) as package, pytest.raises((DebError, tarfile.TarError)):
        _read_all(package)


def _read_all(package: Deb) -> None:
    for entry in package.entries():
        if entry.stream is not None:
            entry.stream.read()


def test_a_text_heavy_member_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """64 MiB of one repeated line compresses to almost nothing: reading it must not inflate
    a whole compressed block at once (tarfile's own stream decompression holds it all)."""
    text = b"all work and no play makes jack a dull boy\n" * ((64 << 20) // 43)
    for compression in ("gzip", "xz"):
        spec = DebSpec("text", files={"usr/share/text": text}, compression=compression)
        deb = build_deb(spec, tmp_path / compression, tmp_path / "work")
        tracemalloc.start()
        try:
            with Deb(deb) as package:
                for entry in package.entries():
                    while entry.stream is not None and entry.stream.read(1 << 20):
                        pass
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # xz's own window is 8 MiB at dpkg-deb's level; tarfile's decompression held > 64 MiB
        assert peak < 24 << 20, f"{compression}: {peak} bytes at the peak"
