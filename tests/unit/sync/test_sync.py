"""The sync engine over in-memory targets: entries expand to tags (allow/deny, registries by
catalog), a dry run writes nothing, a run makes the target equal to the source (referrers from
and to separate repositories included), an unchanged tag costs one HEAD on each side (plus the
referrer re-check), new attestations of unchanged images are picked up, failures stay with
their tag, copies share their limits, and the server runs entries on their schedule."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter

import pytest

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.settings import ClientConfig, TLSMode
from dockyard.copy.events import CopyFinished, CopyStarted, Event
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestUnknown
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag
from dockyard.sync.client import sync_client, sync_client_config
from dockyard.sync.config import parse_sync_config
from dockyard.sync.engine import Syncer
from dockyard.sync.model import SyncConfig, SyncConfigError
from dockyard.sync.report import SyncReport
from dockyard.sync.run import KnownReferrers
from dockyard.sync.server import serve
from support.ocilayout import build_image, layer
from unit.copy.fakes import MemoryTarget, store
from unit.copy.scenes import SBOM, SIGNATURE, Scene, attach, manifest_of, multi_platform

SRC = Reference.parse("src.test/acme/app")
SCOUT = Reference.parse("scout.test/acme/app")
DST = Reference.parse("dst.test/mirror/app")
TAGS = ("24.1", "24.2", "24.2-alpine", "24-debian12", "22.1")
SELECTED = ("24.1", "24.2")

SEED_LIKE = """\
version: 1
sync:
  - source: src.test/acme/app
    target: dst.test/mirror/app
    type: repository
    fastCopy: true
    referrers: true
    referrerSource: scout.test/acme/app
    referrerTarget: dst.test/mirror/app
    tags:
      allow: [ "24.*" ]
      deny: [ ".*alpine.*", ".*debian12.*" ]
"""


def config(text: str = SEED_LIKE) -> SyncConfig:
    return parse_sync_config(textwrap.dedent(text), "sync.yaml")


def publish(place: MemoryTarget, tags: tuple[str, ...] = TAGS) -> dict[str, Scene]:
    """An index per tag in the source, and in the attestations repository (the seed's Scout
    registry) an SBOM of each index and a signature of its amd64 image."""
    scenes = {}
    for tag in tags:
        scene = multi_platform(place, SRC.with_tag(tag), seed=f"app-{tag}")
        attach(place, SCOUT, scene.index, SBOM, f"sbom {tag}".encode())
        attach(place, SCOUT, manifest_of(scene.amd64), SIGNATURE, f"signature {tag}".encode())
        scenes[tag] = scene
    return scenes


def digest_at(place: MemoryTarget, ref: Reference) -> Digest | None:
    return place.repos[ref.name].tags.get(ref.tag or "")


def referrer_digests(place: MemoryTarget, repo: Reference, subject: Digest) -> set[Digest]:
    return {
        m.digest
        for m in place.repos[repo.name].manifests.values()
        if m.subject is not None and m.subject.digest == subject
    }


def by_tag(report: SyncReport) -> dict[str, str]:
    return {t.tag: t.status for repo in report.repositories for t in repo.tags}


async def test_check_plans_every_selected_tag_and_writes_nothing() -> None:
    place = MemoryTarget()
    publish(place)
    report = await Syncer(config(), place).check()
    assert by_tag(report) == {"24.1": "add", "24.2": "add"}
    (repo,) = report.repositories
    assert (repo.source, repo.target) == (SRC.name, DST.name)
    assert repo.referrers_to_copy == 4  # an SBOM of each index, a signature of its amd64
    assert repo.bytes_to_transfer > 0
    assert report.dry_run
    assert not report.failed
    assert not place.ops("manifest_put")
    assert not place.ops("blob_put")
    assert not place.ops("blob_mount")
    assert DST.name not in place.repos or not place.repos[DST.name].tags
    assert report.to_json()["totals"]["add"] == 2


async def test_once_makes_the_target_equal_to_the_source() -> None:
    place = MemoryTarget()
    scenes = publish(place)
    report = await Syncer(config(), place).run()
    assert not report.failed, report.dumps()
    assert by_tag(report) == {"24.1": "add", "24.2": "add"}
    assert set(place.repos[DST.name].tags) == set(SELECTED)
    for tag in SELECTED:
        scene = scenes[tag]
        assert digest_at(place, DST.with_tag(tag)) == scene.digest
        for subject in (scene.index.digest, Digest.parse(scene.amd64.digest)):
            copied = referrer_digests(place, DST, subject)
            assert copied == referrer_digests(place, SCOUT, subject)
            assert len(copied) == 1
        for image in (scene.amd64, scene.arm64, scene.attestation, scene.plain):
            assert Digest.parse(image.digest) in place.repos[DST.name].manifests
    totals = report.totals()
    assert totals["referrers_copied"] == 4
    assert totals["bytes_copied"] > 0


async def test_a_second_run_is_unchanged_and_costs_a_head_on_each_side() -> None:
    place = MemoryTarget()
    publish(place)
    plain = config(
        "\n".join(line for line in SEED_LIKE.splitlines() if "referrer" not in line.lower()) + "\n"
    )
    await Syncer(plain, place).run()
    place.calls.clear()
    report = await Syncer(plain, place).run()
    assert by_tag(report) == {"24.1": "unchanged", "24.2": "unchanged"}
    ops = Counter(op for op, _ in place.calls)
    # a one-shot run lists the tags on each side (the target's listing spares the HEADs of
    # tags it lacks, and every HEAD in a new repository)
    assert ops == {"tag_list": 2, "manifest_head": 2 * len(SELECTED)}
    assert all(t.result is None for t in report.repositories[0].tags)


async def test_a_server_cycle_with_nothing_changed_lists_the_source_and_heads_each_tag() -> None:
    place = MemoryTarget()
    publish(place)
    plain = config(
        "\n".join(line for line in SEED_LIKE.splitlines() if "referrer" not in line.lower()) + "\n"
    )
    syncer = Syncer(plain, place)
    await syncer.run()
    place.calls.clear()
    report = await syncer.run()
    assert by_tag(report) == {"24.1": "unchanged", "24.2": "unchanged"}
    ops = Counter(op for op, _ in place.calls)
    assert ops == {"tag_list": 1, "manifest_head": 2 * len(SELECTED)}


async def test_a_cold_run_asks_a_new_target_repository_nothing_before_writing() -> None:
    place = MemoryTarget()
    scenes = publish(place)
    report = await Syncer(config(), place).run()
    assert not report.failed, report.dumps()
    # the HEADs left are the source's, resolving each tag; the target was listed once
    assert sorted(place.ops("manifest_head")) == sorted(SELECTED)
    assert place.ops("blob_head") == []
    assert place.ops("tag_list").count(DST.name) == 1
    for tag in SELECTED:
        assert digest_at(place, DST.with_tag(tag)) == scenes[tag].digest


async def test_unchanged_images_have_their_referrers_checked_again() -> None:
    place = MemoryTarget()
    scenes = publish(place)
    await Syncer(config(), place).run()
    place.calls.clear()
    report = await Syncer(config(), place).run()
    assert by_tag(report) == {"24.1": "unchanged", "24.2": "unchanged"}
    ops = Counter(op for op, _ in place.calls)
    assert not ops["manifest_put"]
    assert not ops["blob_put"]
    assert not ops["blob_head"]
    assert ops["manifest_head"] == 2 * len(SELECTED)
    assert ops["manifest_get"] == len(SELECTED)  # each index, to find its manifests
    assert ops["referrers"] > 0

    # an attestation published after the image: picked up although the tag is unchanged
    late = attach(place, SCOUT, scenes["24.1"].index, SIGNATURE, b"signed later")
    report = await Syncer(config(), place).run()
    assert by_tag(report) == {"24.1": "unchanged", "24.2": "unchanged"}
    tag = report.repositories[0].tags[0]
    assert tag.referrers_to_copy == 1
    assert tag.result is not None
    assert tag.result.referrers_copied == 1
    assert late.digest in referrer_digests(place, DST, scenes["24.1"].index.digest)


async def test_a_server_cycle_trusts_the_target_referrers_it_listed_and_asks_the_source() -> None:
    place = MemoryTarget()
    scenes = publish(place)
    one_shot = Syncer(config(), place)
    await one_shot.run()
    place.calls.clear()
    await Syncer(config(), place).run()
    asked_one_shot = len(place.ops("referrers"))

    server = Syncer(config(), place)
    await server.run()  # lists the target's referrers once
    place.calls.clear()
    report = await server.run()
    assert by_tag(report) == {"24.1": "unchanged", "24.2": "unchanged"}
    # each index and amd64 image has a referrer: their target listing is not asked again
    assert len(place.ops("referrers")) == asked_one_shot - 2 * len(SELECTED)

    # the source is still asked: an attestation published now is copied by the next cycle
    late = attach(place, SCOUT, scenes["24.1"].index, SIGNATURE, b"signed later")
    report = await server.run()
    assert report.repositories[0].tags[0].result is not None
    assert report.repositories[0].tags[0].result.referrers_copied == 1
    assert late.digest in referrer_digests(place, DST, scenes["24.1"].index.digest)
    place.calls.clear()
    report = await server.run()
    assert report.totals()["referrers_copied"] == 0
    assert not place.ops("manifest_put")


async def test_a_run_lists_each_repository_once_for_all_its_tags_digest_tags() -> None:
    place = MemoryTarget()
    publish(place)
    with_digest_tags = config(SEED_LIKE.replace("    fastCopy: true\n", "    digestTags: true\n"))
    report = await Syncer(with_digest_tags, place).run()
    assert not report.failed, report.dumps()
    # the tags to sync and every tag's digest tags come from one listing; the target's once
    assert sorted(place.ops("tag_list")) == sorted([SRC.name, SCOUT.name, DST.name])


def test_known_referrers_expire_and_stay_bounded() -> None:
    now = [0.0]
    known = KnownReferrers(seconds=10, entries=2, clock=lambda: now[0])
    subject, other, third = (Digest.of(f"s{i}".encode()) for i in range(3))
    desc = Descriptor(mt.OCI_MANIFEST, Digest.of(b"r"), 1)
    known.add(("dst/app", subject), desc)
    assert known.get(("dst/app", subject)) is None  # unknown lists are not made up
    known.put(("dst/app", subject), [])
    known.add(("dst/app", subject), desc)
    assert known.get(("dst/app", subject)) == [desc]
    now[0] = 10.0
    assert known.get(("dst/app", subject)) is None  # asked again after `seconds`
    known.put(("dst/app", subject), [desc])
    known.put(("dst/app", other), [])
    known.put(("dst/app", third), [])
    assert known.get(("dst/app", subject)) is None  # the oldest went first
    assert known.get(("dst/app", third)) == []


async def test_a_moved_tag_is_an_update() -> None:
    place = MemoryTarget()
    publish(place)
    await Syncer(config(), place).run()
    moved = multi_platform(place, SRC.with_tag("24.2"), seed="app-24.2-rebuilt")
    report = await Syncer(config(), place).check()
    assert by_tag(report) == {"24.1": "unchanged", "24.2": "update"}
    await Syncer(config(), place).run()
    assert digest_at(place, DST.with_tag("24.2")) == moved.digest


async def test_a_failing_tag_fails_alone() -> None:
    place = MemoryTarget()
    scenes = publish(place)
    place.fail("manifest_get", scenes["24.2"].index.digest, ManifestUnknown("gone"))
    messages: list[str] = []
    report = await Syncer(config(), place, log=messages.append).run()
    assert by_tag(report) == {"24.1": "add", "24.2": "failed"}
    assert report.failed
    failed = report.repositories[0].tags[1]
    assert failed.error is not None
    assert "gone" in failed.error
    assert any("24.2" in m and "gone" in m for m in messages)
    assert digest_at(place, DST.with_tag("24.1")) == scenes["24.1"].digest
    assert "24.2" not in place.repos[DST.name].tags


async def test_an_unlistable_repository_is_a_failed_repository() -> None:
    place = MemoryTarget()
    place.fail("tag_list", SRC.name, ManifestUnknown("no such repository"))
    report = await Syncer(config(), place).run()
    (repo,) = report.repositories
    assert repo.error is not None
    assert "no such repository" in repo.error
    assert report.failed


async def test_shared_blobs_and_manifests_move_once() -> None:
    place = MemoryTarget(delay=0.001)
    base = layer({"etc/os-release": "shared base\n"})
    for i in range(6):
        store(place, SRC, build_image({"app": f"{i}"}, layers=[base]), tag=f"v{i}")
        store(place, SRC, build_image({"app": "same"}, layers=[base]), tag=f"same{i}")
    text = "sync:\n  - {source: src.test/acme/app, target: dst.test/mirror/app, type: repository}\n"
    report = await Syncer(config("defaults: {parallel: 4}\n" + text), place).run()
    assert not report.failed
    puts = Counter(place.ops("blob_put"))
    assert puts[base.digest] == 1
    assert max(puts.values()) == 1


async def test_parallel_bounds_image_copies() -> None:
    place = MemoryTarget(delay=0.002)
    for i in range(8):
        store(place, SRC, build_image({"app": f"{i}"}), tag=f"v{i}")
    in_flight = most = 0

    def progress(event: Event) -> None:
        nonlocal in_flight, most
        if isinstance(event, CopyStarted):
            in_flight += 1
            most = max(most, in_flight)
        elif isinstance(event, CopyFinished):
            in_flight -= 1

    text = (
        "defaults: {parallel: 2}\n"
        "sync:\n  - {source: src.test/acme/app, target: dst.test/mirror/app, type: repository}\n"
    )
    report = await Syncer(config(text), place, progress=progress).run()
    assert not report.failed
    assert most == 2


async def test_an_image_entry_with_one_platform() -> None:
    place = MemoryTarget()
    scene = multi_platform(place, SRC.with_tag("1"))
    text = (
        "sync:\n  - source: src.test/acme/app:1\n    target: dst.test/mirror/app:1-arm\n"
        "    type: image\n    platform: linux/arm64\n"
    )
    report = await Syncer(config(text), place).run()
    assert by_tag(report) == {"1-arm": "add"}
    assert digest_at(place, DST.with_tag("1-arm")) == Digest.parse(scene.arm64.digest)
    again = await Syncer(config(text), place).run()
    assert by_tag(again) == {"1-arm": "unchanged"}


async def test_media_types_skip_other_manifests() -> None:
    place = MemoryTarget()
    multi_platform(place, SRC.with_tag("index"))
    store(place, SRC, build_image({"a": "b"}), tag="image")
    text = (
        "sync:\n  - source: src.test/acme/app\n    target: dst.test/mirror/app\n"
        "    type: repository\n    mediaTypes: [application/vnd.oci.image.manifest.v1+json]\n"
    )
    report = await Syncer(config(text), place).run()
    assert by_tag(report) == {"image": "add", "index": "skipped"}
    skipped = next(t for t in report.repositories[0].tags if t.tag == "index")
    assert skipped.reason is not None
    assert "not in mediaTypes" in skipped.reason
    assert set(place.repos[DST.name].tags) == {"image"}


async def test_missing_only_copies_what_the_target_lacks() -> None:
    place = MemoryTarget()
    publish(place)
    await Syncer(config(), place).run()
    multi_platform(place, SRC.with_tag("24.2"), seed="moved")
    multi_platform(place, SRC.with_tag("24.3"), seed="new")
    report = await Syncer(config(), place).run(missing_only=True)
    assert by_tag(report) == {"24.1": "skipped", "24.2": "skipped", "24.3": "add"}


async def test_fallback_referrer_tags_are_not_synced_as_images() -> None:
    place = MemoryTarget()
    scene = multi_platform(place, SRC.with_tag("1"))
    store(place, SRC, build_image({"x": "fallback"}), tag=fallback_tag(scene.digest))
    text = (
        "sync:\n  - {source: src.test/acme/app, target: dst.test/mirror/app, type: repository,"
        " referrers: true}\n"
    )
    assert set(by_tag(await Syncer(config(text), place).check())) == {"1"}
    without = text.replace(", referrers: true", "")
    assert len(by_tag(await Syncer(config(without), place).check())) == 2


class CatalogTarget(MemoryTarget):
    async def catalog(self, registry: str) -> list[str]:
        prefix = f"{registry}/"
        return sorted(n[len(prefix) :] for n in self.repos if n.startswith(prefix))


async def test_a_registry_entry_syncs_the_repositories_it_selects() -> None:
    place = CatalogTarget()
    for name in ("team/a", "team/b", "team/old", "other/c"):
        store(place, Reference.parse(f"src.test/{name}"), build_image({"n": name}), tag="1")
    text = (
        "sync:\n  - source: src.test\n    target: dst.test/mirror\n    type: registry\n"
        "    repos: {allow: ['team/.*'], deny: ['team/old']}\n"
    )
    report = await Syncer(config(text), place).run()
    assert [(r.source, r.target) for r in report.repositories] == [
        ("src.test/team/a", "dst.test/mirror/team/a"),
        ("src.test/team/b", "dst.test/mirror/team/b"),
    ]
    assert not report.failed
    assert place.repos["dst.test/mirror/team/a"].tags["1"]


async def test_a_registry_that_cannot_be_listed_fails_its_entry() -> None:
    text = "sync:\n  - {source: src.test, target: dst.test, type: registry}\n"
    report = await Syncer(config(text), MemoryTarget()).run()
    assert report.failed
    assert "cannot list the repositories" in (report.repositories[0].error or "")


async def test_entries_can_be_chosen() -> None:
    place = MemoryTarget()
    store(place, SRC, build_image({"a": "1"}), tag="1")
    text = (
        "sync:\n"
        "  - {source: src.test/acme/app:1, target: dst.test/one/app:1, type: image}\n"
        "  - {source: src.test/acme/app:1, target: dst.test/two/app:1, type: image}\n"
    )
    report = await Syncer(config(text), place).run(entries=[1])
    assert report.entries == (1,)
    assert [r.target for r in report.repositories] == ["dst.test/two/app"]


# --- the server ----------------------------------------------------------------------------------


async def test_the_server_runs_entries_on_their_interval_until_stopped() -> None:
    place = MemoryTarget()
    store(place, SRC, build_image({"a": "1"}), tag="1")
    text = (
        "sync:\n"
        "  - {source: src.test/acme/app, target: dst.test/mirror/app, type: repository,"
        " interval: 50ms}\n"
        "  - {source: src.test/acme/app:1, target: dst.test/other/app:1, type: image}\n"
    )
    reports: list[SyncReport] = []
    messages: list[str] = []
    stop = asyncio.Event()

    def reported(report: SyncReport) -> None:
        reports.append(report)
        if len(reports) == 3:
            stop.set()

    syncer = Syncer(config(text), place)
    server = asyncio.create_task(serve(syncer, stop, on_report=reported, log=messages.append))
    await asyncio.wait_for(server, 2)
    assert all(r.entries == (0,) for r in reports)
    assert by_tag(reports[0]) == {"1": "add"}  # what the target lacks, at start
    assert by_tag(reports[-1]) == {"1": "unchanged"}
    assert any("sync[1]" in m and "no schedule" in m for m in messages)
    assert "dst.test/other/app" not in place.repos


async def test_stopping_the_server_cancels_a_run_in_progress() -> None:
    place = MemoryTarget(delay=0.05)
    for i in range(20):
        store(place, SRC, build_image({"a": f"{i}"}), tag=f"v{i}")
    text = (
        "sync:\n  - {source: src.test/acme/app, target: dst.test/mirror/app, type: repository,"
        " schedule: '@hourly'}\n"
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(Syncer(config(text), place), stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(server, 2)
    assert len(place.repos[DST.name].tags) < 20


async def test_a_server_with_nothing_scheduled_refuses_to_start() -> None:
    text = "sync:\n  - {source: src.test/acme/app:1, target: dst.test/x/app:1, type: image}\n"
    with pytest.raises(SyncConfigError, match="no sync entry has a schedule"):
        await serve(Syncer(config(text), MemoryTarget()), asyncio.Event())


# --- client settings from creds ----------------------------------------------------------------


def test_creds_are_laid_over_the_users_settings() -> None:
    base = ClientConfig()
    base.login("a.test", "old-user", "old-password")
    base.update("b.test", tls=TLSMode.INSECURE, req_concurrent=2)
    text = (
        "creds:\n"
        "  - {registry: a.test, user: alice, pass: secret, tls: disabled}\n"
        "  - {registry: b.test, reqPerSec: 1.5}\n"
        "  - {registry: docker.io, hostname: 127.0.0.1:5000, blobChunk: 1024}\n"
    )
    settings = sync_client_config(config(text), base)
    a = settings.get("a.test")
    assert a.credential is not None
    assert (a.credential.username, a.credential.password) == ("alice", "secret")
    assert a.tls is TLSMode.DISABLED
    b = settings.get("b.test")
    assert (b.tls, b.req_concurrent, b.req_per_sec) == (TLSMode.INSECURE, 2, 1.5)
    assert settings.get("index.docker.io").blob_chunk == 1024
    # the user's own settings are not changed
    kept = base.get("a.test").credential
    assert kept is not None
    assert kept.username == "old-user"


async def test_a_client_connects_to_the_creds_hostname() -> None:
    from aiohttp import web

    seen: list[str] = []

    async def v2(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", v2)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        text = (
            "creds:\n"
            f"  - {{registry: 'registry.example.invalid:5000', hostname: '127.0.0.1:{port}',"
            " tls: disabled, reqConcurrent: 1}\n"
            "defaults: {userAgent: mirror-bot/1, skipDockerConfig: true}\n"
        )
        client = sync_client(config(text), ClientConfig())
        registry = RegistryClient(client)
        try:
            await registry.ping("registry.example.invalid:5000")
        finally:
            await registry.close()
    finally:
        await runner.cleanup()
    assert seen == ["registry.example.invalid:5000"]


# --- rate limits -------------------------------------------------------------------------------


async def test_a_copy_waits_while_the_source_has_too_few_pulls_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = [3, 7, 50]
    asked: list[Reference] = []

    async def remaining(client: RegistryClient, ref: Reference) -> int | None:
        asked.append(ref)
        return answers.pop(0)

    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    monkeypatch.setattr("dockyard.sync.engine.rate_limit_remaining", remaining)
    text = (
        "sync:\n  - {source: src.test/acme/app:1, target: dst.test/x/app:1, type: image,"
        " ratelimit: {min: 10, retry: 10m}}\n"
    )
    cfg = config(text)
    registry = RegistryClient(Client(ClientConfig()))
    syncer = Syncer(cfg, registry, sleep=nap, log=lambda _: None)
    await syncer._wait_for_rate_limit(cfg.sync[0], Reference.parse("src.test/acme/app:1"))
    assert naps == [600.0, 600.0]
    assert len(asked) == 3
    await registry.close()
