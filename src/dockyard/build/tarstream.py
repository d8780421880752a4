"""Read a layer blob as tar entries while it streams: never the whole layer in memory.

The blob's chunks (verified by the Target as they arrive) go through a decompressor chosen by
the layer's media type (gzip, zstd, none; OCI's and Docker's) whose output comes out in pieces
of at most `PIECE` bytes whatever the ratio, into a push parser that turns 512-byte headers
(ustar, GNU long names, PAX records) into `Member`s and hands each member's data to the
handler piece by piece. Decompression and handlers run in a worker thread, one chunk at a
time, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol, cast

import zstandard

from dockyard.build.entries import Entry, Kind, clean_path
from dockyard.build.errors import ContentInvalid
from dockyard.client.target import Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.reference import Reference

PIECE = 1024 * 1024
"""The most decompressed bytes handed on at once (a zip bomb costs time, not memory)."""
MAX_META = 1024 * 1024
"""The largest PAX header or GNU long name accepted."""
BLOCK = 512

GZIP, ZSTD, NONE = "gzip", "zstd", "none"
_COMPRESSION = {
    mt.OCI_LAYER_TAR: NONE,
    mt.OCI_LAYER_GZIP: GZIP,
    mt.OCI_LAYER_ZSTD: ZSTD,
    mt.DOCKER_LAYER_GZIP: GZIP,
    mt.DOCKER_FOREIGN_LAYER: GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": NONE,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": ZSTD,
    "application/vnd.docker.image.rootfs.diff.tar": NONE,
}

_KINDS = {
    tarfile.REGTYPE: Kind.FILE,
    tarfile.AREGTYPE: Kind.FILE,
    tarfile.CONTTYPE: Kind.FILE,
    tarfile.DIRTYPE: Kind.DIR,
    tarfile.SYMTYPE: Kind.SYMLINK,
    tarfile.LNKTYPE: Kind.HARDLINK,
    tarfile.CHRTYPE: Kind.OTHER,
    tarfile.BLKTYPE: Kind.OTHER,
    tarfile.FIFOTYPE: Kind.OTHER,
}


_META_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


def compression_of(desc: Descriptor) -> str:
    """How the layer `desc` is compressed; `ContentInvalid` for a media type that is not a
    tar layer."""
    try:
        return _COMPRESSION[desc.media_type]
    except KeyError:
        raise ContentInvalid(
            f"layer {desc.digest} has media type {desc.media_type!r}, which is not a tar layer "
            "(expected an OCI or Docker layer: tar, tar+gzip or tar+zstd)",
            {"digest": str(desc.digest), "media_type": desc.media_type},
        ) from None


class DataSink(Protocol):
    """Where a member's bytes go; `write` gets views that are only valid during the call."""

    def write(self, data: memoryview) -> None: ...

    def close(self) -> None: ...


Handler = Callable[[Entry], DataSink | None]
"""Called for each member (its data not yet read); returns where its bytes go, or None to
skip them."""


@dataclass
class _Pending:
    """What GNU long-name records and PAX headers say about the next member."""

    path: str | None = None
    link: str | None = None
    pax: dict[str, str] | None = None


class TarParser:
    """A push parser: `feed` it the tar stream in pieces of any size; it calls the handler."""

    def __init__(self, handler: Handler, where: str) -> None:
        self.handler = handler
        self.where = where
        self._buf = bytearray()
        self._need = BLOCK  # bytes wanted in _buf before _header/_meta runs
        self._remaining = 0  # data bytes of the current member still to come
        self._pad = 0  # padding after them
        self._sink: DataSink | None = None
        self._meta: tuple[bytes, int] | None = None  # (type, size) of a long-name/PAX record
        self._pending = _Pending()
        self._global: dict[str, str] = {}
        self._ended = False

    def feed(self, data: bytes | memoryview) -> None:
        """Consume `data`, calling the handler for every member that completes a header."""
        view = memoryview(data)
        pos, size = 0, len(view)
        while pos < size and not self._ended:
            if self._remaining:
                take = min(self._remaining, size - pos)
                if self._sink is not None:
                    self._sink.write(view[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._end_data()
            elif self._pad:
                take = min(self._pad, size - pos)
                pos += take
                self._pad -= take
            else:
                take = min(self._need - len(self._buf), size - pos)
                self._buf += view[pos : pos + take]
                pos += take
                if len(self._buf) == self._need:
                    block, self._buf = bytes(self._buf), bytearray()
                    self._need = BLOCK
                    if self._meta is not None:
                        self._take_meta(block)
                    else:
                        self._header(block)

    def write(self, data: bytes) -> int:
        """`feed`, as a file object's `write` (for zstandard's stream writer)."""
        self.feed(data)
        return len(data)

    def finish(self) -> None:
        """The stream ended: `ContentInvalid` if it ended inside a member."""
        if self._remaining or self._meta is not None or (self._buf and not self._ended):
            raise ContentInvalid(f"{self.where}: the tar stream ends inside an entry")

    def _end_data(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _header(self, block: bytes) -> None:
        if block == bytes(BLOCK):
            self._ended = True  # end-of-archive: what follows is padding
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ContentInvalid(f"{self.where}: not a tar stream ({exc})") from exc
        if info.type in _META_TYPES:
            if info.size > MAX_META:
                raise ContentInvalid(f"{self.where}: a tar extended header of {info.size} bytes")
            self._meta = (info.type, info.size)
            self._need = _padded(info.size)
            if not self._need:
                self._take_meta(b"")
            return
        self._member(info)

    def _take_meta(self, block: bytes) -> None:
        assert self._meta is not None
        kind, size = self._meta
        self._meta = None
        payload = block[:size]
        if kind == tarfile.GNUTYPE_LONGNAME:
            self._pending.path = _cstring(payload)
        elif kind == tarfile.GNUTYPE_LONGLINK:
            self._pending.link = _cstring(payload)
        elif kind == tarfile.XGLTYPE:
            self._global.update(_pax_records(payload, self.where))
        else:
            self._pending.pax = {**(self._pending.pax or {}), **_pax_records(payload, self.where)}

    def _member(self, info: tarfile.TarInfo) -> None:
        pending, self._pending = self._pending, _Pending()
        pax = {**self._global, **(pending.pax or {})}
        name = pax.get("path", pending.path or info.name)
        link = pax.get("linkpath", pending.link or info.linkname)
        size = int(pax.get("size", info.size))
        if info.type == tarfile.GNUTYPE_SPARSE or "GNU.sparse.major" in pax:
            raise ContentInvalid(f"{self.where}: {name!r} is a sparse file, which is unsupported")
        kind = _KINDS.get(info.type)
        if kind is None:
            raise ContentInvalid(f"{self.where}: {name!r} has unknown tar type {info.type!r}")
        try:
            path = clean_path(name)
            if kind == Kind.HARDLINK:
                link = clean_path(link)
        except ValueError as exc:
            raise ContentInvalid(
                f"{self.where}: {exc}: a layer may not write outside its root"
            ) from exc
        entry = Entry(
            path,
            kind,
            info.mode & 0o7777,
            int(pax.get("uid", info.uid)),
            int(pax.get("gid", info.gid)),
            link if kind in (Kind.SYMLINK, Kind.HARDLINK) else "",
            size if kind == Kind.FILE else 0,
        )
        data_size = size if info.type not in (tarfile.LNKTYPE, tarfile.SYMTYPE) else 0
        # the root itself ("./") is nothing a layer can change
        sink = self.handler(entry) if path else None
        self._sink = sink if kind == Kind.FILE else None
        self._remaining = data_size
        self._pad = _padded(data_size) - data_size
        if not data_size:
            self._end_data()


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _cstring(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(payload: bytes, where: str) -> dict[str, str]:
    """`LEN key=value\\n` records (POSIX pax); values are UTF-8."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != 0:
        space = payload.find(b" ", pos)
        try:
            length = int(payload[pos:space])
        except ValueError:
            raise ContentInvalid(f"{where}: a malformed PAX header") from None
        record = payload[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ContentInvalid(f"{where}: a malformed PAX header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _Decoder:
    """Decompresses pushed chunks into the parser, `PIECE` bytes at most at a time."""

    def __init__(self, compression: str, parser: TarParser) -> None:
        self.compression = compression
        self.parser = parser
        self._gzip = zlib.decompressobj(wbits=31)
        self._zstd = (
            zstandard.ZstdDecompressor().stream_writer(
                cast(IO[bytes], parser), write_size=PIECE, closefd=False, write_return_read=True
            )
            if compression == ZSTD
            else None
        )

    def write(self, chunk: bytes) -> None:
        if self.compression == NONE:
            self.parser.feed(chunk)
        elif self._zstd is not None:
            try:
                self._zstd.write(chunk)
            except zstandard.ZstdError as exc:
                raise ContentInvalid(f"{self.parser.where}: not zstd data ({exc})") from exc
        else:
            self._gunzip(chunk)

    def _gunzip(self, data: bytes) -> None:
        try:
            while data:
                if self._gzip.eof:  # a gzip stream may hold several members, one after another
                    if not data.strip(b"\0"):
                        return  # zero padding after the last member
                    self._gzip = zlib.decompressobj(wbits=31)
                self.parser.feed(self._gzip.decompress(data, PIECE))
                data = self._gzip.unconsumed_tail or self._gzip.unused_data
        except zlib.error as exc:
            raise ContentInvalid(f"{self.parser.where}: not gzip data ({exc})") from exc

    def finish(self) -> None:
        if self.compression == GZIP and not self._gzip.eof:
            raise ContentInvalid(f"{self.parser.where}: the gzip stream is truncated")
        self.parser.finish()


async def read_layer(target: Target, ref: Reference, desc: Descriptor, handler: Handler) -> None:
    """Stream the layer blob `desc` of `ref`'s repository through `handler`, member by member,
    in the order the tar stream holds them."""
    where = f"layer {desc.digest} of {ref}"
    decoder = _Decoder(compression_of(desc), TarParser(handler, where))
    async for chunk in target.blob_get(ref, desc):
        await asyncio.to_thread(decoder.write, chunk)
    decoder.finish()
