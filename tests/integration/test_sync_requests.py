"""How many requests of each kind a sync makes, counted in the access logs of real CNCF
distribution registries (no referrers API: referrers go by fallback tags). Counts, not
timings: a cold mirror asks the new target repository nothing before it writes (one tag
listing, then only uploads and pushes, every blob once); a warm one-shot run costs a tag
listing and a HEAD per tag on each side plus the referrer checks; a server-mode cycle of the
same syncer spares the target's survey, the referrers API probes and the index reads.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from dockyard.client.registry import RegistryClient
from dockyard.client.settings import ClientConfig
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference
from dockyard.sync.client import sync_client
from dockyard.sync.config import parse_sync_config
from dockyard.sync.engine import Syncer
from integration.test_sync import Place, at, places, publish
from support.peers import DockerRegistry, DockerRegistryFactory

pytestmark = pytest.mark.peers
__all__ = ["places"]  # the fixture

TAGS = ("1.0", "1.1", "2.0")
# per tag: an SBOM of the index, a signature of its amd64 image, a signature of the SBOM
REFERRERS = 3 * len(TAGS)
SUBJECTS_WITH_REFERRERS = 3 * len(TAGS)  # the index, amd64 and the SBOM
MANIFESTS = 3 * len(TAGS)  # an index and two images per tag


def config_for(source: str, scout: str, target: str) -> str:
    creds = "".join(
        f"  - registry: {host}\n    tls: disabled\n" for host in (source, scout, target)
    )
    return (
        "version: 1\ncreds:\n"
        + creds
        + textwrap.dedent(f"""\
        defaults:
          parallel: 2
        sync:
          - source: {source}/acme/app
            target: {target}/mirror/app
            type: repository
            fastCopy: true
            referrers: true
            referrerSource: {scout}/acme/app
            referrerTarget: {target}/mirror/app
        """)
    )


def counted(registry: DockerRegistry, since: int) -> dict[tuple[str, str, int], int]:
    return dict(registry.requests(since))


async def blobs_below(place: Place, repo: Reference, tags: tuple[str, ...]) -> set[Digest]:
    """Every blob the copied tags and their referrers name in `repo` of `place`."""
    found: set[Digest] = set()
    pending = [
        m.digest for t in tags for m in [await place.registry.manifest_get(repo.with_tag(t))]
    ]
    seen: set[Digest] = set()
    while pending:
        digest = pending.pop()
        if digest in seen:
            continue
        seen.add(digest)
        manifest = await place.registry.manifest_get(at(repo, digest))
        found.update(b.digest for b in manifest.blobs)
        pending += [c.digest for c in manifest.children]
        pending += [d.digest for d in await place.registry.referrers(at(repo, digest), digest)]
    return found


async def test_cold_warm_and_server_cycles_make_only_the_requests_they_need(
    docker_registry_factory: DockerRegistryFactory, places: Callable[..., Place]
) -> None:
    source, scout, target = (docker_registry_factory(access_log=True) for _ in range(3))
    await publish(places(source.host), places(scout.host), "acme/app", TAGS, size=4096)
    config = parse_sync_config(config_for(source.host, scout.host, target.host), "sync.yaml")

    def syncer() -> Syncer:
        client = sync_client(config, ClientConfig(), docker={})
        return Syncer(config, RegistryClient(client))

    first, second = syncer(), syncer()
    try:
        await cycles(first, second, source, scout, target, places)
    finally:
        for made in (first, second):
            await made.close()


async def cycles(
    first: Syncer,
    second: Syncer,
    source: DockerRegistry,
    scout: DockerRegistry,
    target: DockerRegistry,
    places: Callable[..., Place],
) -> None:
    def marks() -> tuple[int, int, int]:
        return tuple(r.log.stat().st_size for r in (source, scout, target))  # type: ignore[return-value]

    # cold: the target is listed once (the repository is new), then only written to
    before = marks()
    report = await first.run()
    assert not report.failed, report.dumps()
    cold = counted(target, before[2]), counted(source, before[0])
    blobs = await blobs_below(
        places(target.host), Reference.parse(f"{target.host}/mirror/app"), TAGS
    )
    assert cold[0] == {
        ("GET", "tags", 404): 1,
        ("POST", "uploads", 202): len(blobs),
        ("PUT", "uploads", 201): len(blobs),
        # images and indexes, referrers, and the fallback tag index a referrer updates
        ("PUT", "manifests", 201): MANIFESTS + 2 * REFERRERS,
    }
    assert cold[1] == {
        ("GET", "tags", 200): 1,
        ("HEAD", "manifests", 200): len(TAGS),
        ("GET", "manifests", 200): MANIFESTS,
        ("GET", "blobs", 200): len(blobs) - REFERRERS - 1,  # the referrers' blobs are at scout
    }

    # warm, one-shot: a syncer that has not run yet, as `dockyard sync once` from cron
    before = marks()
    report = await second.run()
    assert report.totals()["unchanged"] == len(TAGS), report.dumps()
    referrer_checks = {
        ("GET", "referrers", 404): 1,  # is there a referrers API? (no: fallback tags)
        ("GET", "manifests", 200): SUBJECTS_WITH_REFERRERS,  # each fallback tag index
    }
    assert counted(target, before[2]) == {
        ("GET", "tags", 200): 1,
        ("HEAD", "manifests", 200): len(TAGS),
        **referrer_checks,
    }
    assert counted(source, before[0]) == {
        ("GET", "tags", 200): 1,
        ("HEAD", "manifests", 200): len(TAGS),
        ("GET", "manifests", 200): len(TAGS),  # each index, to check its images' referrers
    }
    assert counted(scout, before[1]) == {("GET", "tags", 200): 1, **referrer_checks}

    # a server-mode cycle: the same syncer again; what it learnt is not asked again (the
    # target's referrers it listed a moment ago, the API probes, the indexes)
    before = marks()
    report = await second.run()
    assert report.totals()["unchanged"] == len(TAGS), report.dumps()
    fallback_checks = {
        ("GET", "tags", 200): 1,  # which subjects have a fallback tag
        ("GET", "manifests", 200): SUBJECTS_WITH_REFERRERS,
    }
    assert counted(target, before[2]) == {("HEAD", "manifests", 200): len(TAGS)}
    assert counted(source, before[0]) == {
        ("GET", "tags", 200): 1,
        ("HEAD", "manifests", 200): len(TAGS),
    }
    assert counted(scout, before[1]) == fallback_checks
