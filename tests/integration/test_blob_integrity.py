"""A blob's bytes always match its digest, whichever worker a request reaches.

`dockyard serve --workers 2`: an upload session has one writer across processes, so chunks
sent on other connections while the final PUT streams can never become part of the blob; and
`dockyard admin fsck` finds, quarantines and forgets a blob whose file went bad, after which a
new push repairs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from support.inprocess import basic
from support.peers import DockyardServer, DockyardServerFactory

OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def two_workers(dockyard_server_factory: DockyardServerFactory) -> DockyardServer:
    return dockyard_server_factory(args=["--workers", "2"])


async def _slowly(data: bytes, pieces: int, pause: float) -> AsyncIterator[bytes]:
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        await asyncio.sleep(pause)
        yield data[start : start + step]


async def _patch(server: DockyardServer, auth: dict[str, str], location: str) -> int:
    # a connection of its own, so either worker may take it
    async with (
        aiohttp.ClientSession(server.url) as session,
        session.patch(location, data=b"p" * 1024, headers={**auth, **OCTET}) as resp,
    ):
        return resp.status


@pytest.mark.peers
async def test_chunks_on_other_connections_never_join_a_blob_being_completed(
    two_workers: DockyardServer,
) -> None:
    server = two_workers
    admin = basic("admin", server.admin_password)
    blob = os.urandom(6 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    async with aiohttp.ClientSession(server.url) as session:
        async with session.post("/v2/admin/race/blobs/uploads/", headers=admin) as resp:
            assert resp.status == 202
            location = resp.headers["Location"]

        async def complete() -> int:
            async with session.put(
                location,
                params={"digest": digest},
                data=_slowly(blob, 96, 0.02),
                headers={**admin, **OCTET},
            ) as resp:
                return resp.status

        completing = asyncio.create_task(complete())
        await asyncio.sleep(0.3)  # the final PUT is streaming in on one worker
        patches = await asyncio.gather(*(_patch(server, admin, location) for _ in range(12)))
        assert await completing == 201
        # refused while the PUT held the session (416), or unknown once it completed (404)
        assert set(patches) <= {416, 404}, patches
        for _ in range(4):  # through both workers
            async with (
                aiohttp.ClientSession(server.url) as fresh,
                fresh.get(f"/v2/admin/race/blobs/{digest}", headers=admin) as resp,
            ):
                assert resp.status == 200
                body = await resp.read()
            assert len(body) == len(blob)
            assert hashlib.sha256(body).hexdigest() == digest.split(":")[1]


def _blob_file(server: DockyardServer, digest: str) -> Path:
    algorithm, encoded = digest.split(":")
    return server.data / "storage" / "blobs" / algorithm / encoded[:2] / encoded / "data"


@pytest.mark.peers
async def test_fsck_quarantines_a_damaged_blob_and_a_new_push_repairs_it(
    dockyard_server: DockyardServer,
) -> None:
    server = dockyard_server
    admin = basic("admin", server.admin_password)
    good = os.urandom(64 * 1024)
    digest = "sha256:" + hashlib.sha256(good).hexdigest()
    blob_url = f"/v2/admin/fsck/blobs/{digest}"
    async with aiohttp.ClientSession(server.url) as session:
        async with session.post(
            "/v2/admin/fsck/blobs/uploads/",
            params={"digest": digest},
            data=good,
            headers={**admin, **OCTET},
        ) as resp:
            assert resp.status == 201
        assert server.cli("admin", "fsck").stdout.endswith("found and quarantined 0 damaged\n")

        path = _blob_file(server, digest)
        path.unlink()  # the upload's hard link keeps nothing now: the session is gone
        path.write_bytes(bytes(len(good)))  # same size, other bytes: a disk fault
        checked = server.cli("admin", "fsck", "--dry-run", check=False)
        assert checked.returncode == 1
        assert f"{digest}: its bytes have digest sha256:" in checked.stdout
        assert path.exists()  # a dry run moves nothing

        repaired = server.cli("admin", "fsck", check=False)
        assert repaired.returncode == 1
        assert "moved to quarantine/sha256/" in repaired.stdout
        assert "forgotten in admin/fsck" in repaired.stdout
        assert not path.exists()
        async with session.head(blob_url, headers=admin) as resp:
            assert resp.status == 404  # so a client pushes it again
        async with session.post(
            "/v2/admin/fsck/blobs/uploads/",
            params={"digest": digest},
            data=good,
            headers={**admin, **OCTET},
        ) as resp:
            assert resp.status == 201
        async with session.get(blob_url, headers=admin) as resp:
            assert resp.status == 200
            assert await resp.read() == good
        assert server.cli("admin", "fsck").returncode == 0
