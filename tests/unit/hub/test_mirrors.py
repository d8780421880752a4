"""Catalog and mirrors in process: an upstream Dockyard (images in one repository, their
attestations in another) mirrored into an organization of a second Dockyard."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import pytest_asyncio
from aiohttp_asgi_connector import ASGIApplicationConnector

from dockyard.app import build_hub
from dockyard.auth.policy import Role, Subject
from dockyard.client.hosts import SessionFactory
from dockyard.client.settings import RegistrySettings
from dockyard.hub.catalog import variant_of
from dockyard.hub.errors import Conflict, Invalid, NotFound
from dockyard.hub.jobs import Job, JobContext
from dockyard.hub.mirrors import PUBLIC_REASON, SYNC_JOB
from dockyard.hub.service import Hub
from dockyard.metadata.mirrors import MirrorRow
from dockyard.oci.digest import Digest
from dockyard.oci.errors import Denied
from support.inprocess import ADMIN_PASSWORD, InProcess, running_app

ATTESTATION = "application/vnd.in-toto+json"


@dataclass
class Scene:
    upstream: InProcess
    home: InProcess
    hub: Hub
    admin: Subject
    owner: Subject
    member: Subject
    upstream_requests: Counter[tuple[str, str]]

    async def sync(self, mirror: MirrorRow, trigger: str = "manual") -> None:
        """Run one sync job of `mirror` right here."""
        job = Job(0, SYNC_JOB, {"mirror_id": mirror.id, "trigger": trigger}, 1, 3, None)
        await self.hub.handlers[SYNC_JOB](job, JobContext(self.hub.queue, 0, "test"))

    async def digest(self, repository: str, tag: str) -> str | None:
        registry = self.home.state.registry
        repo = await registry.repositories.get(repository)
        if repo is None:
            return None
        try:
            return (await registry.manifests.get(repo, tag)).digest
        except Exception:
            return None

    async def referrers(self, repository: str, digest: str) -> list[str]:
        registry = self.home.state.registry
        repo = await registry.repositories.get(repository)
        found = await registry.referrers.list(repo, Digest.parse(digest))
        return [str(d.digest) for d in found]


async def _subject(app: InProcess, name: str, password: str) -> Subject:
    found = await app.state.accounts.authenticate(name, password)
    assert found is not None
    return found


@pytest_asyncio.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with (
        running_app(tmp_path / "up") as upstream,
        running_app(tmp_path / "home", run_workers=False) as home,
    ):
        await home.user("olivia")
        await home.user("mark")
        await home.org("acme", "olivia", {"mark": Role.MEMBER})
        requests: Counter[tuple[str, str]] = Counter()
        hub = build_hub(home.state.registry, home.settings, _counting(upstream, requests))
        yield Scene(
            upstream,
            home,
            hub,
            await _subject(home, "admin", ADMIN_PASSWORD),
            await _subject(home, "olivia", "olivia-password"),
            await _subject(home, "mark", "mark-password"),
            requests,
        )


def _counting(upstream: InProcess, requests: Counter[tuple[str, str]]) -> SessionFactory:
    """Sessions to `upstream` in process that count the requests they send by (method,
    path), but for those answered 401 (asking for a token)."""
    trace = aiohttp.TraceConfig()

    async def ended(
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        if params.response.status != 401:
            requests[(params.method, params.url.path)] += 1

    trace.on_request_end.append(ended)

    def make(_settings: RegistrySettings) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=ASGIApplicationConnector(upstream.app),
            auto_decompress=False,
            trace_configs=[trace],
        )

    return make


async def publish(scene: Scene, tag: str, attest: bool = True, build: int = 1) -> str:
    """Push build `build` of `dhi/python:<tag>` upstream, and an attestation of it to
    `attest/python`."""
    layer = f"{tag} layer, build {build}".encode()
    digest, raw = await scene.upstream.push_image("dhi/python", tag, [layer])
    if attest:
        await attest_image(scene, digest, len(raw), f"provenance of {tag}/{build}")
    return digest


async def attest_image(scene: Scene, digest: str, size: int, statement: str) -> None:
    """Push an attestation of the image `digest` to the separate attestation repository."""
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest}
    await scene.upstream.push_image(
        "attest/python",
        f"att-{statement.replace(' ', '-').replace('/', '-')}",
        [statement.encode()],
        subject={**subject, "size": size},
        artifact_type=ATTESTATION,
    )


async def add_python(scene: Scene, eol_pattern: str | None = r"3\.9.*") -> None:
    await scene.hub.catalog.add(
        scene.admin,
        "python",
        "image",
        "upstream.test/dhi/python",
        description="Python, hardened",
        source_tls="disabled",
        attestation_source="upstream.test/attest/python",
        username="admin",
        password=ADMIN_PASSWORD,
        eol_pattern=eol_pattern,
    )


def test_variants_from_tag_words() -> None:
    assert variant_of("3.13") == "standard"
    assert variant_of("3.13-dev") == "dev"
    assert variant_of("3.13-debian12-fips-dev") == "fips-dev"
    assert variant_of("3.13-alpine3.21") == "standard"


async def test_only_site_admins_change_the_catalog(scene: Scene) -> None:
    with pytest.raises(Denied, match="site admin"):
        await scene.hub.catalog.add(scene.owner, "python", "image", "upstream.test/dhi/python")
    with pytest.raises(Invalid, match="lowercase"):
        await scene.hub.catalog.add(scene.admin, "Python!", "image", "upstream.test/dhi/python")
    with pytest.raises(Invalid, match="without tag"):
        await scene.hub.catalog.add(scene.admin, "python", "image", "upstream.test/dhi/python:3")
    with pytest.raises(Invalid, match="kind"):
        await scene.hub.catalog.add(scene.admin, "python", "vm", "upstream.test/dhi/python")
    await add_python(scene)
    with pytest.raises(Conflict, match="already has"):
        await add_python(scene)


async def test_only_owners_mirror(scene: Scene) -> None:
    await add_python(scene)
    with pytest.raises(Denied, match="only owners of organization 'acme' can mirror"):
        await scene.hub.mirrors.create(scene.member, "python", "acme")
    with pytest.raises(NotFound, match="no organization"):
        await scene.hub.mirrors.create(scene.owner, "python", "nobody")
    with pytest.raises(NotFound, match="no entry"):
        await scene.hub.mirrors.create(scene.owner, "ruby", "acme")
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    assert mirror.repository == "acme/dhi-python"
    assert mirror.visibility == "private"
    # a mirror may keep an upstream index (and its signatures) with only some platforms
    repository = await scene.home.state.registry.repositories.get("acme/dhi-python")
    assert repository is not None
    assert repository.sparse_indexes is True
    assert (await scene.hub.queue.list(kind=SYNC_JOB))[0].state == "queued"
    with pytest.raises(Conflict, match="already exists"):
        await scene.hub.mirrors.create(scene.owner, "python", "acme")


async def test_mirror_copies_tags_with_attestations_and_skips_end_of_life(scene: Scene) -> None:
    current = await publish(scene, "3.13")
    dev = await publish(scene, "3.13-dev")
    await publish(scene, "3.9")  # end of life by the entry's pattern
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    await scene.sync(mirror, "create")

    assert await scene.digest("acme/dhi-python", "3.13") == current
    assert await scene.digest("acme/dhi-python", "3.13-dev") == dev
    assert await scene.digest("acme/dhi-python", "3.9") is None
    assert len(await scene.referrers("acme/dhi-python", current)) == 1
    (run,) = await scene.hub.mirrors.runs(scene.owner, mirror.id)
    assert (run.outcome, run.trigger, run.tags_added, run.referrers_copied) == (
        "succeeded",
        "create",
        2,
        2,
    )
    assert run.bytes > 0
    shown = await scene.hub.mirrors.get(scene.member, mirror.id)  # members see it
    assert (shown.tags_total, shown.tags_done) == (2, 2)
    tags = {t.tag: t for t in await scene.hub.catalog.tags(await scene.hub.catalog.get("python"))}
    assert (tags["3.13-dev"].variant, tags["3.9"].eol, tags["3.13"].eol) == ("dev", True, False)


async def test_a_sync_lists_the_upstream_tags_once_for_all_tags(scene: Scene) -> None:
    for tag in ("3.12", "3.13", "3.14"):
        await publish(scene, tag)
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    scene.upstream_requests.clear()
    await scene.sync(mirror)
    assert await scene.digest("acme/dhi-python", "3.14") is not None
    listings = {
        path: count
        for (method, path), count in scene.upstream_requests.items()
        if path.endswith("/tags/list")
    }
    # the catalog's refresh, then one listing for the digest tags of every tag copied
    assert listings == {"/v2/dhi/python/tags/list": 2, "/v2/attest/python/tags/list": 1}


async def test_next_sync_brings_new_and_moved_tags_and_late_attestations(scene: Scene) -> None:
    first = await publish(scene, "3.13", attest=False)
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    await scene.sync(mirror)
    assert await scene.referrers("acme/dhi-python", first) == []

    # an attestation of the unchanged image, added after it was published, and a new tag
    upstream = scene.upstream.state.registry
    repo = await upstream.repositories.get("dhi/python")
    assert repo is not None
    size = len((await upstream.manifests.get(repo, "3.13")).content)
    await attest_image(scene, first, size, "late scan")
    new = await publish(scene, "3.14")
    await scene.sync(mirror, "webhook")

    assert await scene.digest("acme/dhi-python", "3.14") == new
    assert len(await scene.referrers("acme/dhi-python", first)) == 1
    latest = (await scene.hub.mirrors.runs(scene.owner, mirror.id))[0]
    assert (latest.tags_added, latest.tags_unchanged, latest.outcome) == (1, 1, "succeeded")


async def test_mirroring_again_into_another_repository(scene: Scene) -> None:
    await publish(scene, "3.13")
    await add_python(scene)
    first = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    second = await scene.hub.mirrors.create(
        scene.owner, "python", "acme", repository="acme/python-again"
    )
    await scene.sync(first)
    await scene.sync(second)
    entry = await scene.hub.catalog.get("python")
    shown = await scene.hub.mirrors.mirrored_to(scene.member, entry)
    assert [m.repository for m in shown] == ["acme/dhi-python", "acme/python-again"]
    assert await scene.digest("acme/python-again", "3.13") == await scene.digest(
        "acme/dhi-python", "3.13"
    )
    with pytest.raises(Invalid, match="inside organization"):
        await scene.hub.mirrors.create(scene.owner, "python", "acme", repository="other/x")


async def test_a_public_mirror_pauses_and_resumes_when_private(scene: Scene) -> None:
    await publish(scene, "3.13")
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    repositories = scene.home.state.registry.repositories
    await repositories.configure(scene.owner, mirror.repository, visibility="public")
    repositories.forget_cached()
    await scene.sync(mirror)
    paused = await scene.hub.mirrors.get(scene.owner, mirror.id)
    assert (paused.status, paused.status_reason) == ("paused", PUBLIC_REASON)
    assert await scene.digest(mirror.repository, "3.13") is None
    assert (await scene.hub.mirrors.runs(scene.owner, mirror.id))[0].outcome == "skipped"

    await repositories.configure(scene.owner, mirror.repository, visibility="private")
    assert await scene.hub.mirrors.schedule_due() == 1  # resumed at once, not at the interval
    await scene.sync(mirror)
    assert (await scene.hub.mirrors.get(scene.owner, mirror.id)).status == "active"
    assert await scene.digest(mirror.repository, "3.13") is not None


async def test_stopped_mirrors_keep_their_images_and_get_nothing_more(scene: Scene) -> None:
    await publish(scene, "3.13")
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    await scene.sync(mirror)
    with pytest.raises(Denied, match="only owners"):
        await scene.hub.mirrors.stop(scene.member, mirror.id)
    stopped = await scene.hub.mirrors.stop(scene.owner, mirror.id)
    assert (stopped.status, stopped.status_reason) == ("stopped", "stopped by olivia")
    await publish(scene, "3.14")
    await scene.sync(mirror)
    assert await scene.digest(mirror.repository, "3.13") is not None
    assert await scene.digest(mirror.repository, "3.14") is None
    with pytest.raises(Conflict, match="stopped"):
        await scene.hub.mirrors.sync_now(scene.owner, mirror.id)


async def test_end_of_life_tags_follow_the_option(scene: Scene) -> None:
    await publish(scene, "3.9")
    await publish(scene, "3.13")
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme", include_eol=True)
    await scene.sync(mirror)
    old = await scene.digest(mirror.repository, "3.9")
    assert old is not None
    await scene.hub.mirrors.set_include_eol(scene.owner, mirror.id, False)
    rebuilt = await publish(scene, "3.9", build=2)  # the tag moves upstream
    assert rebuilt != old
    moved = await publish(scene, "3.13", build=2)
    await scene.sync(mirror)
    assert await scene.digest(mirror.repository, "3.9") == old  # no longer updated
    assert await scene.digest(mirror.repository, "3.13") == moved
    latest = (await scene.hub.mirrors.runs(scene.owner, mirror.id))[0]
    assert latest.tags_updated == 1


async def test_the_worker_runs_a_new_mirror_to_completion(scene: Scene) -> None:
    import asyncio

    await publish(scene, "3.13")
    await add_python(scene)
    mirror = await scene.hub.mirrors.create(scene.owner, "python", "acme")
    stop = asyncio.Event()
    running = asyncio.create_task(scene.hub.run(stop, concurrency=2, tick_seconds=0.1))
    try:
        for _ in range(200):
            runs = await scene.hub.mirrors.runs(scene.owner, mirror.id)
            if runs and runs[0].outcome != "running":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    assert runs[0].outcome == "succeeded"
    (job,) = await scene.hub.queue.list(kind=SYNC_JOB)
    assert job.state == "succeeded"


async def test_a_helm_chart_is_mirrored_as_the_artifact_it_is(scene: Scene) -> None:
    """Charts are OCI artifacts: config and content layer with Helm's media types."""
    upstream = scene.upstream
    config = json.dumps({"name": "redis", "version": "19.0.1", "apiVersion": "v2"}).encode()
    chart = b"redis-19.0.1.tgz bytes"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.cncf.helm.config.v1+json",
                "digest": await upstream.push_blob("charts/redis", config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": await upstream.push_blob("charts/redis", chart),
                    "size": len(chart),
                }
            ],
        }
    ).encode()
    async with upstream.client.put(
        "/v2/charts/redis/manifests/19.0.1",
        data=manifest,
        headers={**upstream.admin, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    ) as resp:
        assert resp.status == 201
        digest = resp.headers["Docker-Content-Digest"]
    await scene.hub.catalog.add(
        scene.admin,
        "redis-chart",
        "chart",
        "upstream.test/charts/redis",
        source_tls="disabled",
        username="admin",
        password=ADMIN_PASSWORD,
    )
    mirror = await scene.hub.mirrors.create(scene.owner, "redis-chart", "acme")
    await scene.sync(mirror)
    assert mirror.repository == "acme/dhi-redis-chart"
    assert await scene.digest(mirror.repository, "19.0.1") == digest
