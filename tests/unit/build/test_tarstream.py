"""Layers read as tar entries while they stream: every header form tar writers use, any piece
boundaries, several gzip members, and flat memory whatever the layer's size."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest
import zstandard

from dockyard.build.entries import Entry, Kind
from dockyard.build.errors import ContentInvalid
from dockyard.build.rootfs import RootFS
from dockyard.build.tarstream import TarParser
from support.ocilayout import (
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_ZSTD,
    Layer,
    config_bytes,
    digest_of,
    manifest_bytes,
    random_bytes,
)
from unit.build.images import Images


class Collect:
    """A handler that keeps every entry and every file's bytes."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.data: dict[str, bytearray] = {}

    def __call__(self, entry: Entry) -> Collect.Sink:
        self.entries.append(entry)
        return Collect.Sink(self.data.setdefault(entry.path, bytearray()))

    class Sink:
        def __init__(self, buf: bytearray) -> None:
            self.buf = buf

        def write(self, data: memoryview) -> None:
            self.buf += data

        def close(self) -> None:
            pass


def _tar(fmt: int, members: list[tuple[str, bytes | None, str]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                info.mode, info.uid, info.gid = 0o4755, 1000, 70000
                tar.addfile(info, io.BytesIO(data or b""))
    return out.getvalue()


LONG = "usr/share/" + "very-long-directory-name/" * 8 + "file.txt"


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("piece", [1, 511, 1 << 20])
def test_every_header_form_in_pieces_of_any_size(fmt: int, piece: int) -> None:
    members: list[tuple[str, bytes | None, str]] = [
        ("./etc/passwd", b"root:x:0:0:::\n", ""),
        ("bin/sh", None, "/usr/bin/dash" + ("-x" * 60 if fmt != tarfile.USTAR_FORMAT else "")),
        ("empty", b"", ""),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        members.append((LONG, b"long", ""))
    stream = _tar(fmt, members) + bytes(4096)  # trailing zero padding, as tar writers leave
    collect = Collect()
    parser = TarParser(collect, "test")
    for start in range(0, len(stream), piece):
        parser.feed(stream[start : start + piece])
    parser.finish()
    paths = [entry.path for entry in collect.entries]
    assert paths[:3] == ["etc/passwd", "bin/sh", "empty"]
    passwd = collect.entries[0]
    assert (passwd.kind, passwd.mode, passwd.uid, passwd.gid, passwd.size) == (
        Kind.FILE, 0o4755, 1000, 70000, 14,
    )  # fmt: skip
    assert collect.data["etc/passwd"] == b"root:x:0:0:::\n"
    assert collect.entries[1].kind == Kind.SYMLINK
    assert collect.entries[1].link == members[1][2]
    if fmt != tarfile.USTAR_FORMAT:
        assert paths[3] == LONG
        assert collect.data[LONG] == b"long"


def test_a_stream_cut_inside_an_entry_is_refused() -> None:
    stream = _tar(tarfile.PAX_FORMAT, [("a", b"x" * 2000, "")])
    parser = TarParser(Collect(), "layer sha256:abc")
    parser.feed(stream[:1500])
    with pytest.raises(ContentInvalid, match="layer sha256:abc: the tar stream ends inside"):
        parser.finish()


def test_a_path_out_of_the_root_is_refused() -> None:
    stream = _tar(tarfile.PAX_FORMAT, [("../../etc/cron.d/x", b"x", "")])
    with pytest.raises(ContentInvalid, match="may not write outside its root"):
        TarParser(Collect(), "test").feed(stream)


async def test_a_gzip_layer_of_several_members_reads_whole(images: Images) -> None:
    tar = _tar(tarfile.PAX_FORMAT, [("etc/group", b"root:x:0:\n", "")])
    blob = gzip.compress(tar[:700], mtime=0) + gzip.compress(tar[700:], mtime=0)
    layer = Layer(blob, MEDIA_TYPE_LAYER_GZIP, diff_id=digest_of(tar))
    rootfs = await images.rootfs("v1", [layer])
    assert rootfs.collected("etc/group") == b"root:x:0:\n"


def _big_layer(path: Path, size: int) -> None:
    """A zstd layer with one file of `size` bytes (half random, half zeros: both the hard and
    the highly compressible case), written a MiB at a time."""
    chunk = 1 << 20

    class Source(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), self.left, chunk)
            offset = size - self.left
            data = random_bytes(n, offset) if (offset // chunk) % 2 else bytes(n)
            buffer[:n] = data
            self.left -= n
            return n

    with (
        path.open("wb") as raw,
        zstandard.ZstdCompressor(level=1).stream_writer(raw) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        info = tarfile.TarInfo("big.bin")
        info.size = size
        tar.addfile(info, io.BufferedReader(Source(), chunk))
        tar.addfile(tarfile.TarInfo("etc/passwd"), io.BytesIO(b""))


async def test_memory_stays_flat_while_a_large_layer_streams(
    images: Images, tmp_path: Path
) -> None:
    size = 64 << 20
    _big_layer(tmp_path / "layer", size)
    layer = images.layout.put_file(tmp_path / "layer", MEDIA_TYPE_LAYER_ZSTD)
    config = images.layout.blob(config_bytes(["sha256:" + "0" * 64]), MEDIA_TYPE_IMAGE_CONFIG)
    manifest = images.layout.blob(manifest_bytes(config, [layer]), MEDIA_TYPE_IMAGE_MANIFEST)
    images.layout.tag("big", manifest)
    ref = images.ref("big")
    parsed = await images.manifest(ref)
    tracemalloc.start()
    try:
        rootfs = await RootFS.scan(images.target, ref, parsed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    entry = rootfs.entry("big.bin")
    assert entry is not None
    assert entry.size == size
    assert peak < 12 << 20, f"peak {peak >> 20} MiB while a {size >> 20} MiB layer streamed"
