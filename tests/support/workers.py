"""Which worker process of a server answered a request: the one holding its TCP connection."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    pid: int | None  # the server process that held the connection


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def request(
    url: str,
    group: int,
    method: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> Answer:
    """`method path` over a new HTTP/1.1 connection from `source`, and which process of the
    process group `group` answered it (asked while the connection is still open)."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    body = urlencode(form).encode() if form is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    if form is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    try:
        writer.write("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = (await reader.readline()).decode()
        received: dict[str, str] = {}
        while (line := (await reader.readline()).decode().strip()) != "":
            name, _, value = line.partition(":")
            received[name.strip().title()] = value.strip()
        content = await reader.readexactly(int(received.get("Content-Length", "0")))
        client_port = writer.get_extra_info("sockname")[1]
        pid = holder(group, int(port), client_port)
    finally:
        writer.close()
        await writer.wait_closed()
    return Answer(int(status_line.split()[1]), received, content, pid)


def holder(group: int, server_port: int, client_port: int) -> int | None:
    """The process of `group` holding the server end of the loopback TCP connection."""
    inode = _server_socket_inode(server_port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in _group_members(group):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def _server_socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def _group_members(group: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdecimal():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the fields after the command name (which may hold spaces) in parentheses
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == group:
            members.append(int(entry))
    return members
