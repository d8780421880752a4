"""Reproducible layers: the same files give the same bytes, whatever order they came in."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest
import zstandard

from dockyard.build.layers import LayerBlob, LayerBuilder

EPOCH = 1_700_000_000


def _fill(builder: LayerBuilder, order: list[int]) -> None:
    adds = [
        lambda: builder.add_dir("usr", 0o755),
        lambda: builder.add_dir("usr/bin", 0o755),
        lambda: builder.add_file("usr/bin/tool", io.BytesIO(b"#!/bin/sh\necho hi\n"), 0o755),
        lambda: builder.add_file("etc/app.conf", b"key=value\n", 0o644, uid=1000, gid=1000),
        lambda: builder.add_symlink("usr/bin/alias", "tool"),
        lambda: builder.add_file("opt/old", b"x", 0o600, mtime=EPOCH - 10),
    ]
    for i in order:
        adds[i]()


def _tar(blob: LayerBlob) -> bytes:
    data = blob.path.read_bytes()
    if blob.descriptor.media_type.endswith("+gzip"):
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.parametrize("compression", ["GZIP", "ZSTD"])
def test_the_same_files_in_another_order_are_the_same_layer(
    tmp_path: Path, compression: str
) -> None:
    first, second = LayerBuilder(tmp_path / "a", EPOCH), LayerBuilder(tmp_path / "b", EPOCH)
    _fill(first, [0, 1, 2, 3, 4, 5])
    _fill(second, [5, 3, 4, 2, 1, 0])
    a, b = first.write(compression), second.write(compression)  # type: ignore[arg-type]
    assert a.descriptor == b.descriptor
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.descriptor.digest.encoded == hashlib.sha256(a.path.read_bytes()).hexdigest()
    assert a.descriptor.size == a.path.stat().st_size
    assert a.diff_id.encoded == hashlib.sha256(_tar(a)).hexdigest()


def test_entries_are_sorted_with_times_clamped_and_no_names(tmp_path: Path) -> None:
    builder = LayerBuilder(tmp_path, EPOCH)
    _fill(builder, [2, 5, 0, 3, 1, 4])
    blob = builder.write("GZIP")
    with tarfile.open(fileobj=io.BytesIO(_tar(blob))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            "etc/app.conf",
            "opt/old",
            "usr",
            "usr/bin",
            "usr/bin/alias",
            "usr/bin/tool",
        ]
        by_name = {m.name: m for m in members}
        assert by_name["opt/old"].mtime == EPOCH - 10  # older times are kept
        assert {m.mtime for n, m in by_name.items() if n != "opt/old"} == {EPOCH}
        assert {(m.uname, m.gname) for m in members} == {("", "")}
        assert (by_name["etc/app.conf"].uid, by_name["etc/app.conf"].mode) == (1000, 0o644)
        assert by_name["usr/bin/alias"].issym()
        tool = tar.extractfile("usr/bin/tool")
        assert tool is not None
        assert tool.read() == b"#!/bin/sh\necho hi\n"
    # GNU tar reads it too
    listed = subprocess.run(
        ["tar", "-tzf", str(blob.path)], capture_output=True, text=True, check=True
    )
    assert "usr/bin/tool" in listed.stdout.split()


def test_a_later_entry_replaces_an_earlier_one(tmp_path: Path) -> None:
    builder = LayerBuilder(tmp_path, EPOCH)
    builder.add_file("etc/ca.pem", b"first", 0o644)
    builder.add_file("etc/ca.pem", io.BytesIO(b"second"), 0o600)
    with tarfile.open(fileobj=io.BytesIO(_tar(builder.write("GZIP")))) as tar:
        (member,) = tar.getmembers()
        data = tar.extractfile(member)
        assert data is not None
        assert (data.read(), member.mode) == (b"second", 0o600)


def test_a_hardlink_that_sorts_before_its_file_becomes_the_file(tmp_path: Path) -> None:
    builder = LayerBuilder(tmp_path, EPOCH)
    builder.add_file("usr/bin/zz", b"binary", 0o755)
    builder.add_hardlink("usr/bin/aa", "usr/bin/zz", 0o755)
    builder.add_hardlink("usr/bin/mm", "usr/bin/zz", 0o755)
    blob = builder.write("GZIP")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(blob.path), "-C", str(out)], check=True)
    inodes = {(out / "usr/bin" / n).stat().st_ino for n in ("aa", "mm", "zz")}
    assert len(inodes) == 1
    assert (out / "usr/bin/mm").read_bytes() == b"binary"


def test_a_hardlink_to_nothing_is_refused(tmp_path: Path) -> None:
    builder = LayerBuilder(tmp_path, EPOCH)
    builder.add_hardlink("a", "b", 0o644)
    with pytest.raises(ValueError, match="a links to b"):
        builder.write("GZIP")


def test_a_large_file_streams(tmp_path: Path) -> None:
    source = tmp_path / "big"
    with source.open("wb") as out:
        for _ in range(64):
            out.write(b"\0" * (1024 * 1024))
    builder = LayerBuilder(tmp_path / "work", EPOCH)
    tracemalloc.start()
    try:
        with source.open("rb") as data:
            builder.add_file("big", data, 0o644)
        blob = builder.write("GZIP")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"{peak} bytes at most for a 64 MiB file"
    assert blob.descriptor.size < 1024 * 1024
    assert not list((tmp_path / "work").glob("staged-*")), "staging files are removed"
