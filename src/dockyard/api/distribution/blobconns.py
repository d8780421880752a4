"""The connections of the blob sender's listener: how many, from whom, for how long.

Anybody may connect without credentials, so a connection counts against its client address
and against the process, and one that is only waiting for a request is the first to go when
there is no room for a new one: holding idle connections costs an attacker the connections,
not anyone else a download.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from dockyard.api.clients import client_of
from dockyard.oci.errors import OciError, TooManyRequests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one client may hold of one server process's listener, and for how long."""

    header_seconds: float = 10.0  # a request head, from its first byte (or the connect)
    idle_seconds: float = 15.0  # a kept-alive connection with no next request
    stall_seconds: float = 30.0  # one chunk of a body (at least 256 KiB, about a second's
    # worth at the client's last rate): a client that stops reading is dropped after this
    connections: int = 1024  # per process
    per_client: int = 64  # per process and client address (IPv6: per /64)


class ListenerFull(OciError):
    """Every connection slot of the process is sending a body (distribution's own code)."""

    code, status, default_message = "UNAVAILABLE", 503, "the blob sender is busy"


class Connection:
    """One client connection: `busy` while it is answered, else waiting for a request."""

    __slots__ = ("busy", "client", "task")

    def __init__(self, client: str, task: asyncio.Task[Any]) -> None:
        self.client, self.task, self.busy = client, task, False


def client_key(peer: Any) -> str:
    """Whom a connection counts against (`clients.client_of`): its IPv4 address, or the /64
    of its IPv6 address."""
    try:
        return client_of(str(peer[0]))
    except (TypeError, IndexError):
        return str(peer)


class Connections:
    """The connections of one listener, counted per client, the ones waiting for a request
    (oldest first) the first to go when there is no room for another."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._clients: dict[str, dict[Connection, None]] = {}
        self._waiting: dict[Connection, None] = {}
        self._count = 0

    def admit(self, conn: Connection) -> OciError | None:
        """Count `conn` in, closing a waiting connection to make room; or why it cannot be."""
        mine = self._clients.get(conn.client, {})
        if len(mine) >= self._limits.per_client and not self._close_one_of(mine):
            return TooManyRequests(
                f"{len(mine)} connections from {conn.client} are downloading already: "
                "retry when one of them is done",
                headers={"Retry-After": "1"},
            )
        if self._count >= self._limits.connections and not self._close_one_of(self._waiting):
            return ListenerFull(
                f"all {self._count} connections are downloading: retry in a moment",
                headers={"Retry-After": "1"},
            )
        self._clients.setdefault(conn.client, {})[conn] = None
        self._waiting[conn] = None
        self._count += 1
        return None

    def _close_one_of(self, candidates: dict[Connection, None]) -> bool:
        victim = next((conn for conn in candidates if not conn.busy), None)
        if victim is None:
            return False
        log.debug("blob sender: closing a waiting connection of %s for a new one", victim.client)
        self.forget(victim)
        victim.task.cancel()
        return True

    def busy(self, conn: Connection) -> None:
        conn.busy = True
        self._waiting.pop(conn, None)

    def waiting(self, conn: Connection) -> None:
        conn.busy = False
        mine = self._clients.get(conn.client)
        if mine is not None and mine.pop(conn, False) is None:  # still counted: to the back
            mine[conn] = None
            self._waiting[conn] = None

    def forget(self, conn: Connection) -> None:
        """Count `conn` out (once, whether it ended or was closed for another)."""
        mine = self._clients.get(conn.client)
        if mine is None or mine.pop(conn, False) is not None:
            return
        self._count -= 1
        self._waiting.pop(conn, None)
        if not mine:
            del self._clients[conn.client]
