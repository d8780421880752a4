"""Hand-written HTTP/1.1 over a real socket, for what a client library will not send: a body
cut short of its Content-Length, a chunked body without its last chunk, a hostile Host.

`RawConnection` sends exactly the bytes it is given and reads one response, so a test can
show that the server answered *before* the rest of a body was sent (it did not wait to read
it): a server that waits for the rest never answers, and `response()` fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

ANSWER_TIMEOUT = 30.0
"""How long `response()` waits; an answer that depends on bytes never sent never comes."""


@dataclass
class RawResponse:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def error(self) -> dict[str, Any]:
        """The first entry of the spec's error envelope, checked to be one."""
        parsed = json.loads(self.body)
        assert set(parsed) == {"errors"}, self.body
        first: dict[str, Any] = parsed["errors"][0]
        assert set(first) <= {"code", "message", "detail"}, self.body
        assert first["message"].strip(), self.body
        return first


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = 0

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.sent += len(data)

    async def response(self, what: str = "the request") -> RawResponse:
        """The next response; fails the test when none comes within `ANSWER_TIMEOUT`."""
        try:
            return await asyncio.wait_for(read_response(self.reader), ANSWER_TIMEOUT)
        except TimeoutError:
            pytest.fail(
                f"no answer to {what} within {ANSWER_TIMEOUT:g} s after {self.sent} bytes sent: "
                "the server is waiting for the rest of the body"
            )

    async def closed(self) -> bool:
        """Whether the server closes the connection after its answer (instead of waiting for,
        or taking as a next request, the rest of a body it did not read)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), ANSWER_TIMEOUT)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return rest == b""


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[RawConnection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request_head(method: str, path: str, host: str, *headers: str) -> bytes:
    """The request line and headers, with the blank line that ends them."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (the last one is `chunk(b"")`)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One HTTP/1.1 response with a Content-Length or chunked body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"][0]))
    elif headers.get("transfer-encoding", [""])[0].lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return RawResponse(status, headers, body)
