"""HTTP/1.1 message heads for the blob sender: a request head read from a stream, a response
head written as bytes.

Only what a GET or HEAD of a blob needs: the request line, header fields, keep-alive, no
request body. Limits as http.server's (a 64 KiB line, 100 fields), and on the whole head too,
so a connection cannot make the process hold more than 64 KiB for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from dockyard.api.errors import BadRequest
from dockyard.oci.errors import Unsupported

MAX_HEAD = 65_536  # request line and header fields, in bytes
MAX_FIELDS = 100
KNOWN_VERSIONS = ("HTTP/1.1", "HTTP/1.0")


class RequestLineTooLong(BadRequest):
    status, default_message = 414, f"the request line is longer than {MAX_HEAD} bytes"


class HeadTooLarge(BadRequest):
    status, default_message = (
        431,
        f"the request head is over {MAX_HEAD} bytes or {MAX_FIELDS} fields",
    )


class MethodNotImplemented(Unsupported):
    status = 501


class VersionNotSupported(BadRequest):
    status, default_message = 505, "this listener speaks HTTP/1.1 (and 1.0)"


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    version: str
    fields: dict[str, str]  # lower-case names; of a repeated field, the first

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the answer (HTTP/1.1 unless told not to)."""
        tokens = {token.strip().lower() for token in self.fields.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def has_body(self) -> bool:
        """A GET has no body; one that says it has is answered and the connection closed, as
        its bytes would otherwise be read as the next request."""
        return "transfer-encoding" in self.fields or self.fields.get("content-length", "0") != "0"


async def read_head(
    reader: asyncio.StreamReader, wait: float, header_seconds: float
) -> RequestHead | None:
    """The next request's head, or None when the client closed the connection first.

    The first byte must come within `wait` seconds and the rest of the head within
    `header_seconds` of it (TimeoutError otherwise): a client that trickles a header a byte at a
    time is held to the same deadline as one that sends nothing. The reader's own limit must be
    at least `MAX_HEAD` bytes.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(wait) as deadline:
        try:
            first = await reader.readexactly(1)
        except asyncio.IncompleteReadError:
            return None
        deadline.reschedule(loop.time() + header_seconds)
        line = first + await _line(reader, RequestLineTooLong)
        size, count, fields = len(line), 0, dict[str, str]()
        while (field := await _line(reader, HeadTooLarge)) not in (b"\r\n", b"\n"):
            size, count = size + len(field), count + 1
            if size > MAX_HEAD or count > MAX_FIELDS:
                raise HeadTooLarge()
            name, value = _field(field)
            fields.setdefault(name, value)
    return _request(line, fields)


async def _line(reader: asyncio.StreamReader, too_long: type[BadRequest]) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise too_long() from None
    except asyncio.IncompleteReadError:
        raise ConnectionResetError("the client closed the connection mid-request") from None


def _field(line: bytes) -> tuple[str, str]:
    text = line.decode("latin-1")
    name, colon, value = text.partition(":")
    if not colon or not name or name != name.strip() or text[0] in " \t":
        raise BadRequest(f"{text.strip()[:80]!r} is not a header field (name: value)")
    return name.lower(), value.strip()


def _request(line: bytes, fields: dict[str, str]) -> RequestHead:
    words = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(words) != 3 or not all(words):
        raise BadRequest(f"{line[:80]!r} is not a request line (METHOD /path HTTP/1.1)")
    method, target, version = words
    if version not in KNOWN_VERSIONS:
        major = version.removeprefix("HTTP/").partition(".")[0]
        if version.startswith("HTTP/") and major.isdigit() and int(major) >= 2:
            raise VersionNotSupported()
        raise BadRequest(f"{version[:20]!r} is not an HTTP version")
    if method not in ("GET", "HEAD"):
        raise MethodNotImplemented(f"{method[:20]!r}: blob links answer only GET and HEAD")
    return RequestHead(method, target, version, fields)


def response_head(status: int, fields: Mapping[str, str], *, keep_alive: bool) -> bytes:
    """The status line and header fields of an answer, `Connection: close` unless kept alive."""
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Server: Dockyard",
        f"Date: {formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in fields.items()),
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
