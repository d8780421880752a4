"""A mirror whose server is killed (SIGKILL) in the middle of copying resumes after a restart
and completes, with nothing lost, nothing copied twice and nothing corrupt served; and
separate `dockyard worker` processes share the jobs of a server that runs none."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from dockyard.app import build_state, open_store
from dockyard.client.settings import Credential
from dockyard.config import Settings
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.reference import Reference
from support.ocilayout import build_image, random_layer
from support.peers import DockerRegistry, DockyardServerFactory
from support.remote import Connect, Peer, bounded, push

pytestmark = pytest.mark.peers
TAGS = [f"1.{minor}" for minor in range(12)]
LAYER_SIZE = 16 * 1024 * 1024


def query(data: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(data / "dockyard.db", timeout=30) as db:
        return db.execute(sql, args).fetchall()


async def set_up_mirror(data: Path, admin_password: str, upstream: str) -> int:
    """Catalog entry, organization and mirror, through the services on the server's data."""
    settings = Settings(data=data)
    store = open_store(settings)
    try:
        state = await build_state(settings, store)
        await state.accounts.create_user("olivia", "olivia-password")
        await state.accounts.create_org("acme", "olivia")
        admin = await state.accounts.authenticate("admin", admin_password)
        owner = await state.accounts.authenticate("olivia", "olivia-password")
        assert admin is not None
        assert owner is not None
        await state.hub.catalog.add(
            admin, "app", "image", f"{upstream}/dhi/app", source_tls="disabled"
        )
        mirror = await state.hub.mirrors.create(owner, "app", "acme")
        return mirror.id
    finally:
        await store.db.close()


@bounded
async def test_a_mirror_killed_mid_copy_resumes_and_completes(
    docker_registry: DockerRegistry,
    dockyard_server_factory: DockyardServerFactory,
    connect: Connect,
) -> None:
    upstream = Peer(docker_registry.host, connect(docker_registry.host))
    digests = {}
    for tag in TAGS:
        image = build_image(layers=[random_layer(LAYER_SIZE, seed=tag, compressed=False)])
        digests[tag] = str((await push(upstream, upstream.ref(f"dhi/app:{tag}"), image)).digest)
    server = dockyard_server_factory(
        env={"DOCKYARD_JOB_LEASE_SECONDS": "2", "DOCKYARD_MIRROR_PARALLEL_TAGS": "1"}
    )
    mirror_id = await set_up_mirror(server.data, server.admin_password, docker_registry.host)

    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        ((done, total),) = query(
            server.data, "SELECT tags_done, tags_total FROM mirrors WHERE id = ?", mirror_id
        )
        if done >= 2:
            break
        await asyncio.sleep(0.01)
    server.kill()
    assert 2 <= int(done) < len(TAGS), f"killed after {done} of {total} tags: too late to test"

    server.start()
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline and state != "succeeded":
        ((state, attempts),) = query(
            server.data, "SELECT state, attempts FROM jobs WHERE kind = 'mirror.sync'"
        )
        await asyncio.sleep(0.1)
    assert (state, attempts) == ("succeeded", 2)

    runs = query(
        server.data,
        "SELECT outcome, error, tags_added, tags_unchanged FROM sync_runs ORDER BY id",
    )
    assert [r[0] for r in runs] == ["failed", "succeeded"]
    assert "interrupted" in str(runs[0][1])
    _, _, added, unchanged = runs[1]
    assert int(unchanged) >= int(done)  # what was copied before the kill is not copied again
    assert int(added) + int(unchanged) == len(TAGS)

    home = connect(server.host, Credential(username="olivia", password="olivia-password"))
    for tag, digest in digests.items():
        ref = Reference.parse(f"{server.host}/acme/dhi-app:{tag}")
        manifest = await home.manifest_get(ref)
        assert str(manifest.digest) == digest
        for blob in manifest.blobs:
            size = 0
            async for chunk in home.blob_get(
                ref, Descriptor(blob.media_type, blob.digest, blob.size)
            ):
                size += len(chunk)  # the stream verifies the digest as it goes
            assert size == blob.size


@bounded
async def test_separate_workers_run_the_jobs_once(
    docker_registry: DockerRegistry,
    dockyard_server_factory: DockyardServerFactory,
    connect: Connect,
) -> None:
    upstream = Peer(docker_registry.host, connect(docker_registry.host))
    for tag in ("1", "2", "3"):
        image = build_image(layers=[random_layer(64 * 1024, seed=tag)])
        await push(upstream, upstream.ref(f"dhi/app:{tag}"), image)
    server = dockyard_server_factory(env={"DOCKYARD_RUN_WORKERS": "false"})
    mirror_id = await set_up_mirror(server.data, server.admin_password, docker_registry.host)
    await asyncio.sleep(1.5)
    assert query(server.data, "SELECT state FROM jobs") == [("queued",)]  # the server runs none

    workers = [server.worker("worker-a"), server.worker("worker-b")]
    try:
        deadline = time.monotonic() + 60
        while query(server.data, "SELECT state FROM jobs") != [("succeeded",)]:
            assert time.monotonic() < deadline, "the workers did not run the mirror"
            await asyncio.sleep(0.1)
        runs = query(server.data, "SELECT outcome, tags_added FROM sync_runs")
        assert runs == [("succeeded", 3)]
        ((done,),) = query(server.data, "SELECT tags_done FROM mirrors WHERE id = ?", mirror_id)
        assert done == 3
        # Both are up (one may have found nothing to do): a worker still starting when SIGTERM
        # comes dies of it, which says nothing about how a running one stops.
        logs = [server.log.with_name(f"{name}.log") for name in ("worker-a", "worker-b")]
        while not all(log.exists() and "worker running jobs" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "a worker never started"
            await asyncio.sleep(0.1)
    finally:
        for worker in workers:
            worker.stop()
    assert [w.popen.returncode for w in workers] == [0, 0]  # SIGTERM stops them cleanly
