"""Crashes and garbage collection against a real `dockyard serve`.

- kill -9 while a large blob streams in: after a restart nothing half-written is visible, the
  interrupted session resumes from the offset the server reports, a fresh push of the same blob
  succeeds with the right bytes, and what was pushed before the crash is intact;
- `dockyard admin gc` (dry run, grace) prunes links no manifest references and then blobs
  without links, keeps referenced blobs, and never breaks a manifest while pushes run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dockyard.metadata import content
from dockyard.registry.gc import collect
from support.inprocess import InProcess, running_app
from support.ocilayout import (
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_LAYER_GZIP,
    build_image,
    digest_of,
    json_bytes,
    manifest_bytes,
    random_bytes,
    random_layer,
)
from support.peers import DockyardServer, upload_data

OCTET = {"Content-Type": "application/octet-stream"}
MiB = 1024 * 1024


# --- helpers ---------------------------------------------------------------------------------


def session_for(server: DockyardServer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=server.url,
        headers={"Authorization": aiohttp.encode_basic_auth("admin", server.admin_password)},
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def push_blob(session: aiohttp.ClientSession, repo: str, data: bytes) -> int:
    async with session.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(data)}, data=data, headers=OCTET
    ) as resp:
        await resp.read()
        return resp.status


async def push_manifest(
    session: aiohttp.ClientSession, repo: str, reference: str, raw: bytes
) -> aiohttp.ClientResponse:
    async with session.put(
        f"/v2/{repo}/manifests/{reference}",
        data=raw,
        headers={"Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
    ) as resp:
        await resp.read()
        return resp


def image_manifest(config: bytes, layers: list[bytes]) -> bytes:
    return manifest_bytes(
        {"mediaType": MEDIA_TYPE_IMAGE_CONFIG, "digest": digest_of(config), "size": len(config)},
        [
            {"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": digest_of(blob), "size": len(blob)}
            for blob in layers
        ],
    )


async def push_image(
    session: aiohttp.ClientSession, repo: str, tag: str, config: bytes, layers: list[bytes]
) -> bytes:
    for blob in (config, *layers):
        assert await push_blob(session, repo, blob) == 201
    raw = image_manifest(config, layers)
    resp = await push_manifest(session, repo, tag, raw)
    assert resp.status == 201
    return raw


OTHER_PROCESS_WRITES_SEEN_WITHIN = 1.1  # seconds: the default metadata_cache_seconds, and a bit


async def blob_status(session: aiohttp.ClientSession, repo: str, digest: str) -> int:
    async with session.head(f"/v2/{repo}/blobs/{digest}") as resp:
        return resp.status


async def blob_digest(session: aiohttp.ClientSession, repo: str, digest: str) -> str | None:
    """The sha256 of the blob as served (streamed), None when it is not there."""
    async with session.get(f"/v2/{repo}/blobs/{digest}") as resp:
        if resp.status == 404:
            return None
        assert resp.status == 200, await resp.text()
        hasher = hashlib.sha256()
        async for chunk in resp.content.iter_chunked(1 << 20):
            hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()


async def manifest_bytes_of(session: aiohttp.ClientSession, repo: str, reference: str) -> bytes:
    async with session.get(
        f"/v2/{repo}/manifests/{reference}", headers={"Accept": MEDIA_TYPE_IMAGE_MANIFEST}
    ) as resp:
        assert resp.status == 200, (reference, resp.status, await resp.text())
        return await resp.read()


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def upload_data_files(data: Path) -> list[Path]:
    return sorted((data / "storage" / "uploads").glob("*/*/data"))


def blob_file(data: Path, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return data / "storage" / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"


def _offset(range_header: str) -> int:
    last = int(range_header.split("-")[1])
    return 0 if last == 0 else last + 1


# --- kill -9 mid-upload ----------------------------------------------------------------------


async def stream_then_crash(
    server: DockyardServer,
    method: str,
    target: str,
    body: bytes,
    stored: Any,
    *,
    at_least: int,
    send_at_most: int,
    extra_headers: str = "",
) -> int:
    """Stream `body` raw; once the server has put `at_least` bytes on disk (per `stored()`),
    SIGKILL it, never sending more than `send_at_most` bytes. Return how many bytes were sent."""
    token = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n{extra_headers}\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    sent = 0
    try:
        writer.write(head.encode())
        deadline = time.monotonic() + 30
        while stored() < at_least:
            assert time.monotonic() < deadline, f"the server never stored {at_least} bytes"
            if sent < send_at_most:
                chunk = body[sent : min(sent + MiB, send_at_most)]
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 30)
                sent += len(chunk)
            else:
                await asyncio.sleep(0.02)
        server.kill()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    del reader
    assert sent < len(body), "the whole body went out before the crash"
    return sent


@pytest.mark.parametrize("mode", ["chunked", "monolithic"])
async def test_kill_during_a_large_upload(dockyard_server: DockyardServer, mode: str) -> None:
    server = dockyard_server
    repo = "crash/app"
    before = build_image({"etc/before": "pushed before the crash\n"})
    layer = random_layer(64 * MiB, seed=f"crash-{mode}").data
    digest = digest_of(layer)

    async with session_for(server) as session:
        for blob in before.blobs():
            assert await push_blob(session, repo, blob.data) == 201
        resp = await push_manifest(session, repo, "before", before.manifest.data)
        assert resp.status == 201
        location = None
        if mode == "chunked":
            async with session.post(f"/v2/{repo}/blobs/uploads/") as resp:
                assert resp.status == 202
                location = resp.headers["Location"]

    if location is not None:
        upload = upload_data(server.data, location.rsplit("/", 1)[1])
        sent = await stream_then_crash(
            server,
            "PATCH",
            location,
            layer,
            lambda: file_size(upload),
            at_least=16 * MiB,
            send_at_most=48 * MiB,
            extra_headers=f"Content-Range: 0-{len(layer) - 1}\r\n",
        )
    else:
        sent = await stream_then_crash(
            server,
            "POST",
            f"/v2/{repo}/blobs/uploads/?digest={digest}",
            layer,
            lambda: max((file_size(p) for p in upload_data_files(server.data)), default=-1),
            at_least=16 * MiB,
            send_at_most=48 * MiB,
        )
    assert server.process is not None
    assert server.process.exited() is not None
    server.start()

    async with session_for(server) as session:
        # nothing of the interrupted blob is visible, nor placed in the blob store
        assert await blob_status(session, repo, digest) == 404
        async with session.get(f"/v2/{repo}/blobs/{digest}") as resp:
            assert resp.status == 404
            assert (await resp.json())["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert file_size(blob_file(server.data, digest)) == -1

        # what was pushed before the crash is intact
        assert await manifest_bytes_of(session, repo, "before") == before.manifest.data
        for blob in before.blobs():
            assert await blob_digest(session, repo, blob.digest) == blob.digest

        if location is not None:
            # the interrupted session resumes from the offset the server reports
            async with session.get(location) as resp:
                assert resp.status == 204, await resp.text()
                offset = _offset(resp.headers["Range"])
            assert 0 <= offset <= sent
            async with session.patch(
                location,
                data=layer[offset:],
                headers={**OCTET, "Content-Range": f"{offset}-{len(layer) - 1}"},
            ) as resp:
                assert resp.status == 202, await resp.text()
            async with session.put(location, params={"digest": digest}) as resp:
                assert resp.status == 201, await resp.text()
            assert await blob_digest(session, repo, digest) == digest

        # a fresh push of the same blob succeeds and serves the right bytes
        assert await push_blob(session, repo, layer) == 201
        assert await blob_digest(session, repo, digest) == digest
        assert file_size(blob_file(server.data, digest)) == len(layer)
        config = json_bytes({"architecture": "amd64", "os": "linux", "after": "crash"})
        raw = await push_image(session, repo, "after", config, [layer])
        assert await manifest_bytes_of(session, repo, "after") == raw


# --- garbage collection ----------------------------------------------------------------------


_GC_LINE = re.compile(
    r"(?P<verb>would delete|deleted) (?P<blobs>\d+) blobs \((?P<bytes>\d+) bytes\); removed "
    r"(?P<links>\d+) unreferenced links, (?P<orphans>\d+) orphan files, (?P<uploads>\d+) "
    r"abandoned uploads"
)


def run_gc(server: DockyardServer, *args: str) -> dict[str, int]:
    """`dockyard admin gc ARGS` against the server's data; its counts as numbers."""
    output = server.cli("admin", "gc", *args, timeout=60).stdout
    match = _GC_LINE.search(output)
    assert match is not None, output
    return {k: int(v) for k, v in match.groupdict().items() if k != "verb"}


@dataclass
class GcScene:
    """Content pushed before a collection, and what a collection should leave."""

    kept_manifest: bytes
    kept_blobs: list[bytes]
    doomed: list[bytes]  # in gc/app, referenced by nothing once `dropped` is deleted
    dropped_digest: str
    cross_repo: bytes  # pushed loose into gc/other; referenced only from gc/app


async def build_gc_scene(session: aiohttp.ClientSession) -> GcScene:
    shared = random_bytes(50_000, "gc-shared-layer")
    kept_config = json_bytes({"architecture": "amd64", "os": "linux", "image": "kept"})
    kept_layer = random_bytes(40_000, "gc-kept-layer")
    kept = await push_image(session, "gc/app", "keep", kept_config, [shared, kept_layer])

    # an image whose manifest is deleted again: its own blobs lose their last reference
    dropped_config = json_bytes({"architecture": "amd64", "os": "linux", "image": "dropped"})
    dropped_layer = random_bytes(30_000, "gc-dropped-layer")
    dropped = await push_image(session, "gc/app", "drop", dropped_config, [shared, dropped_layer])
    async with session.delete(f"/v2/gc/app/manifests/{digest_of(dropped)}") as resp:
        assert resp.status == 202

    # a blob pushed and never referenced
    loose = random_bytes(20_000, "gc-loose")
    assert await push_blob(session, "gc/app", loose) == 201
    # a blob referenced in gc/app, but only loose in gc/other
    assert await push_blob(session, "gc/other", kept_layer) == 201
    return GcScene(
        kept_manifest=kept,
        kept_blobs=[kept_config, shared, kept_layer],
        doomed=[dropped_config, dropped_layer, loose],
        dropped_digest=digest_of(dropped),
        cross_repo=kept_layer,
    )


async def assert_kept(session: aiohttp.ClientSession, scene: GcScene) -> None:
    assert await manifest_bytes_of(session, "gc/app", "keep") == scene.kept_manifest
    for blob in scene.kept_blobs:
        assert await blob_digest(session, "gc/app", digest_of(blob)) == digest_of(blob)


async def test_gc_prunes_unreferenced_blobs_and_keeps_referenced_ones(
    dockyard_server: DockyardServer,
) -> None:
    server = dockyard_server
    async with session_for(server) as session:
        scene = await build_gc_scene(session)
        everything = [*scene.kept_blobs, *scene.doomed]

        # a dry run deletes nothing, even with no grace
        run_gc(server, "--dry-run", "--grace", "0s")
        # a real run within the grace period deletes nothing either
        counts = run_gc(server, "--grace", "1h")
        assert counts["blobs"] == counts["links"] == 0
        for blob in scene.doomed:
            assert await blob_status(session, "gc/app", digest_of(blob)) == 200
        assert await blob_status(session, "gc/other", digest_of(scene.cross_repo)) == 200
        assert all(file_size(blob_file(server.data, digest_of(b))) == len(b) for b in everything)

        counts = run_gc(server, "--grace", "0s")
        # the server's read cache shows another process's writes within metadata_cache_seconds
        await asyncio.sleep(OTHER_PROCESS_WRITES_SEEN_WITHIN)
        assert counts["blobs"] == len(scene.doomed)
        assert counts["bytes"] == sum(len(b) for b in scene.doomed)
        # links: the three doomed ones in gc/app and the loose one in gc/other
        assert counts["links"] == len(scene.doomed) + 1

        for blob in scene.doomed:
            assert await blob_status(session, "gc/app", digest_of(blob)) == 404
            assert file_size(blob_file(server.data, digest_of(blob))) == -1
        # the loose link in gc/other went, the bytes stay for gc/app
        assert await blob_status(session, "gc/other", digest_of(scene.cross_repo)) == 404
        await assert_kept(session, scene)
        for blob in scene.kept_blobs:
            assert file_size(blob_file(server.data, digest_of(blob))) == len(blob)
        async with session.get(f"/v2/gc/app/manifests/{scene.dropped_digest}") as resp:
            assert resp.status == 404

        # a collected blob can be pushed again
        loose = scene.doomed[-1]
        assert await push_blob(session, "gc/app", loose) == 201
        assert await blob_digest(session, "gc/app", digest_of(loose)) == digest_of(loose)


async def test_gc_dry_run_predicts_the_real_run(sqlite_app: InProcess) -> None:
    store = sqlite_app.state.registry.store
    loose = await sqlite_app.push_blob("gc/app", random_bytes(20_000, "gc-dry-run"))
    await sqlite_app.push_image("gc/app", "keep")
    predicted = await collect(store, 0.0, dry_run=True)
    actual = await collect(store, 0.0)
    assert actual.blobs == 1, "the loose blob is collected"
    async with sqlite_app.client.head(f"/v2/gc/app/blobs/{loose}", headers=sqlite_app.admin) as r:
        assert r.status == 404
    assert (predicted.blobs, predicted.bytes) == (actual.blobs, actual.bytes)


GC_RUNS_WHILE_PUSHING = 2


@dataclass
class PushLog:
    succeeded: dict[str, bytes] = field(default_factory=dict)  # tag → manifest
    failures: dict[str, int] = field(default_factory=dict)  # what went wrong → how often
    attempts: int = 0


async def keep_pushing(session: aiohttp.ClientSession, log: PushLog, stop: asyncio.Event) -> None:
    """Push images until told to stop: a layer every image shares (so a collected blob gets
    pushed again while it is being deleted), a layer of its own and a config."""
    shared = random_bytes(200_000, "gc-race-shared")
    index = 0
    while not stop.is_set():
        index += 1
        log.attempts += 1
        tag = f"t{index}"
        config = json_bytes({"architecture": "amd64", "os": "linux", "n": index})
        own = random_bytes(20_000 + index, f"gc-race-{index}")
        statuses = [await push_blob(session, "gc/race", blob) for blob in (shared, own, config)]
        if statuses != [201, 201, 201]:
            key = f"blob {statuses}"
            log.failures[key] = log.failures.get(key, 0) + 1
            continue
        raw = image_manifest(config, [shared, own])
        resp = await push_manifest(session, "gc/race", tag, raw)
        if resp.status == 201:
            log.succeeded[tag] = raw
        else:
            key = f"manifest {resp.status}"
            log.failures[key] = log.failures.get(key, 0) + 1


async def check_every_manifest(session: aiohttp.ClientSession, log: PushLog) -> None:
    """Every manifest that was accepted, and every tag listed, pulls completely."""
    async with session.get("/v2/gc/race/tags/list") as resp:
        tags = set((await resp.json())["tags"])
    assert set(log.succeeded) <= tags
    for tag in sorted(tags):
        raw = await manifest_bytes_of(session, "gc/race", tag)
        if tag in log.succeeded:
            assert raw == log.succeeded[tag]
        manifest = json.loads(raw)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            served = await blob_digest(session, "gc/race", descriptor["digest"])
            assert served == descriptor["digest"], f"{tag}: blob {descriptor['digest']} is gone"


async def test_gc_while_pushing_never_breaks_a_manifest(dockyard_server: DockyardServer) -> None:
    """On SQLite (the default) write transactions queue, so collection and pushes never
    interleave inside one; PostgreSQL's interleavings are pinned down one by one below."""
    server = dockyard_server
    log = PushLog()
    stop = asyncio.Event()
    gc_runs = 0
    async with session_for(server) as session:
        pusher = asyncio.create_task(keep_pushing(session, log, stop))
        try:
            # let a few pushes land first, then collect with no grace while pushes go on
            deadline = time.monotonic() + 20
            while len(log.succeeded) < 3:
                assert time.monotonic() < deadline, log
                assert not pusher.done(), log
                await asyncio.sleep(0.02)
            attempts = log.attempts
            for _ in range(GC_RUNS_WHILE_PUSHING):
                await asyncio.to_thread(run_gc, server, "--grace", "0s")
                gc_runs += 1
            assert log.attempts > attempts, "no push ran while gc did"
        finally:
            stop.set()
            await asyncio.wait_for(pusher, 30)
        assert gc_runs == GC_RUNS_WHILE_PUSHING
        assert log.succeeded, log
        await check_every_manifest(session, log)
        # manifests that lost the race were refused cleanly, never with a server error (blob
        # uploads can get a 500 when gc expires their session mid-stream: pinned down below)
        assert not [k for k in log.failures if re.fullmatch(r"manifest 5\d\d", k)], log.failures

        # a last collection once the pushes stopped leaves every tagged image whole
        await asyncio.to_thread(run_gc, server, "--grace", "0s")
        await check_every_manifest(session, log)


async def test_gc_does_not_expire_an_upload_that_is_streaming(
    dockyard_server: DockyardServer,
) -> None:
    server = dockyard_server
    data = random_bytes(8 * MiB, "gc-mid-stream")
    digest = digest_of(data)
    token = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    head = (
        f"POST /v2/gc/stream/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode() + data[: 5 * MiB])
        await asyncio.wait_for(writer.drain(), 30)
        deadline = time.monotonic() + 20
        while max((file_size(p) for p in upload_data_files(server.data)), default=-1) < 4 * MiB:
            assert time.monotonic() < deadline, "the server never stored the first 4 MiB"
            await asyncio.sleep(0.02)
        # the upload is half-way through its body; a collection runs meanwhile
        await asyncio.to_thread(run_gc, server, "--grace", "0s")
        writer.write(data[5 * MiB :])
        await asyncio.wait_for(writer.drain(), 30)
        status_line = await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status = int(status_line.split()[1])
    assert status < 500, status_line
    async with session_for(server) as session:
        if status == 201:
            assert await blob_digest(session, "gc/stream", digest) == digest
        else:
            assert await blob_status(session, "gc/stream", digest) == 404
        await server_still_works(session)


async def server_still_works(session: aiohttp.ClientSession) -> None:
    blob = b"after the collection"
    assert await push_blob(session, "gc/stream", blob) == 201
    assert await blob_digest(session, "gc/stream", digest_of(blob)) == digest_of(blob)


class PgTableLock:
    """A SHARE lock on a table, held by a connection of our own: INSERTs and DELETEs on the
    table wait for it, so a transaction can be stopped at a chosen statement."""

    def __init__(self, conn: Any, transaction: Any) -> None:
        self.conn = conn
        self.transaction = transaction

    async def waits(self) -> int:
        """How many lock requests wait in this test's database right now (other tests, in
        parallel, wait on locks in theirs)."""
        # By the waiting backend's database: a row lock wait is on a transaction id, which
        # names no database.
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        return count

    async def waiting(self, n: int) -> None:
        """Wait (at most 20 s) until `n` lock requests are waiting."""
        deadline = time.monotonic() + 20
        while await self.waits() < n:
            assert time.monotonic() < deadline, f"{n} lock waits never happened"
            await asyncio.sleep(0.02)

    async def release(self) -> None:
        await self.transaction.rollback()


async def assert_whole_or_gone(app: InProcess, repo: str, blob: bytes) -> None:
    """The blob is either served whole with its bytes on disk, or unknown with nothing left."""
    digest = digest_of(blob)
    path = blob_file(app.settings.data, digest)
    async with app.client.get(f"/v2/{repo}/blobs/{digest}", headers=app.admin) as resp:
        if resp.status == 200:
            assert await resp.read() == blob
            assert file_size(path) == len(blob)
            return
        assert resp.status == 404
    async with app.state.registry.store.db.read() as conn:
        assert await content.blob_size(conn, digest) is None, "a blob row without its bytes"
    assert file_size(path) == -1, "bytes left behind by a collected blob"


@contextlib.asynccontextmanager
async def pg_table_lock(database_url: str, table: str) -> AsyncIterator[PgTableLock]:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f"LOCK TABLE {table} IN SHARE MODE")
        yield PgTableLock(conn, transaction)
    finally:
        await conn.close()


@pytest.mark.peers
async def test_gc_racing_a_manifest_push_on_postgres(
    tmp_path: Path, postgres_database_url: str
) -> None:
    async with running_app(tmp_path / "data", postgres_database_url) as app:
        store = app.state.registry.store
        config = json_bytes({"architecture": "amd64", "os": "linux", "race": "pinned"})
        layer = random_bytes(10_000, "pinned-race")
        for blob in (config, layer):
            await app.push_blob("gc/pinned", blob)
        raw = image_manifest(config, [layer])

        async def push() -> int:
            async with app.client.put(
                "/v2/gc/pinned/manifests/v1",
                data=raw,
                headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
            ) as resp:
                await resp.read()
                return resp.status

        # the push touches the blobs' links (locking those rows), then waits to INSERT the
        # manifest; collection then starts (cutoff after the touch) and waits on those rows
        async with pg_table_lock(postgres_database_url, "manifests") as lock:
            pushing = asyncio.create_task(push())
            await lock.waiting(1)
            collecting = asyncio.create_task(collect(store, 0.0))
            await lock.waiting(2)
            await lock.release()
            status = await asyncio.wait_for(pushing, 30)
            await asyncio.wait_for(collecting, 30)
        assert status == 201
        for blob in (config, layer):
            async with app.client.get(
                f"/v2/gc/pinned/blobs/{digest_of(blob)}", headers=app.admin
            ) as resp:
                assert resp.status == 200, f"blob {digest_of(blob)} of an accepted manifest: 404"
                assert await resp.read() == blob


@pytest.mark.peers
async def test_gc_racing_an_upload_on_postgres(tmp_path: Path, postgres_database_url: str) -> None:
    async with running_app(tmp_path / "data", postgres_database_url) as app:
        store = app.state.registry.store
        blob = random_bytes(10_000, "pinned-upload-race")
        digest = await app.push_blob("gc/pinned", blob)
        # unlinked (DELETE), its row and bytes wait for the next collection
        async with app.client.delete(f"/v2/gc/pinned/blobs/{digest}", headers=app.admin) as resp:
            assert resp.status == 202
        async with app.client.post("/v2/gc/pinned/blobs/uploads/", headers=app.admin) as resp:
            assert resp.status == 202
            location = resp.headers["Location"]

        async def complete() -> int:
            async with app.client.put(
                location, params={"digest": digest}, data=blob, headers={**app.admin, **OCTET}
            ) as resp:
                await resp.read()
                return resp.status

        # the upload takes the blob's lock and records it again, then waits to link it;
        # collection starts after that and waits on the blob
        async with pg_table_lock(postgres_database_url, "repository_blobs") as lock:
            completing = asyncio.create_task(complete())
            await lock.waiting(1)
            collecting = asyncio.create_task(collect(store, 0.0))
            await lock.waiting(2)
            await lock.release()
            status = await asyncio.wait_for(completing, 30)
            outcome = await asyncio.wait_for(asyncio.gather(collecting, return_exceptions=True), 30)
        assert status == 201
        assert not isinstance(outcome[0], BaseException), repr(outcome[0])
        # With no grace, collection waits for the upload to commit and may then take the blob,
        # which nothing references: it is then gone whole (row, link and bytes) or kept whole.
        await assert_whole_or_gone(app, "gc/pinned", blob)


@pytest.mark.peers
async def test_gc_orphan_sweep_racing_an_upload_on_postgres(
    tmp_path: Path, postgres_database_url: str
) -> None:
    async with running_app(tmp_path / "data", postgres_database_url) as app:
        store = app.state.registry.store
        blob = random_bytes(10_000, "pinned-orphan-race")
        digest = digest_of(blob)
        await app.push_blob("gc/pinned", b"the repository exists")
        async with app.client.post("/v2/gc/pinned/blobs/uploads/", headers=app.admin) as resp:
            assert resp.status == 202
            location = resp.headers["Location"]
        async with app.client.patch(location, data=blob, headers={**app.admin, **OCTET}) as resp:
            assert resp.status == 202

        async def complete() -> int:
            async with app.client.put(
                location, params={"digest": digest}, headers=app.admin
            ) as resp:
                await resp.read()
                return resp.status

        path = blob_file(app.settings.data, digest)
        # the upload places the bytes and records the blob, then waits to link it; collection
        # sweeps orphan files meanwhile
        async with pg_table_lock(postgres_database_url, "repository_blobs") as lock:
            completing = asyncio.create_task(complete())
            await lock.waiting(1)
            assert file_size(path) == len(blob)
            collecting = asyncio.create_task(collect(store, 0.0))
            # until the sweep removed the file, or collection finished or queued on the lock
            for _ in range(500):
                if file_size(path) == -1 or collecting.done() or await lock.waits() >= 2:
                    break
                await asyncio.sleep(0.02)
            await lock.release()
            status = await asyncio.wait_for(completing, 30)
            await asyncio.wait_for(asyncio.gather(collecting, return_exceptions=True), 30)
        assert status == 201
        await assert_whole_or_gone(app, "gc/pinned", blob)
        assert file_size(path) in (-1, len(blob))
