"""Customizations through the management API, in process: who may keep which, the fields each
refusal names, the tags a customization owns, and the builds each change queues."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from argon2 import PasswordHasher

from dockyard.auth import secrets
from dockyard.auth.policy import Role
from dockyard.config import PackageSource
from dockyard.hub.jobs import Job
from dockyard.hub.rebuilds import CHECK_JOB
from dockyard.metadata import customizations as customization_rows
from support.aptrepo import DebSpec, Served
from support.inprocess import ADMIN_PASSWORD, Auth, InProcess, running_app
from support.ocilayout import tar_layer

API = "/api/v1"


@dataclass
class Scene:
    upstream: InProcess
    home: InProcess
    owner: Auth
    member: Auth
    other: Auth
    outsider: Auth
    mirror: int = 0

    async def call(
        self, method: str, path: str, auth: Auth | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        async with self.home.client.request(
            method, API + path, headers=auth or {}, **kwargs
        ) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body


BASE_FILES = [
    ("etc/os-release", 'ID=debian\nVERSION_CODENAME="testing"\n'),
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/group", "root:x:0:\n"),
    ("var/lib/dpkg/status", ""),
]


@contextlib.asynccontextmanager
async def opened(tmp_path: Path, **settings: Any) -> AsyncIterator[Scene]:
    """`acme/dhi-python` mirrored (with tag 3.13, a Debian-like base) from an upstream
    Dockyard, and two repositories of acme's and one of another organization's; `settings`
    are the home site's."""
    async with contextlib.AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(running_app(tmp_path / "up", run_workers=False))
        home = await stack.enter_async_context(
            running_app(tmp_path / "home", session_factory=upstream.session_factory(), **settings)
        )
        await upstream.push_image("dhi/python", "3.13", [tar_layer(BASE_FILES).data])
        owner, member, other, outsider = [
            await home.user(name) for name in ("olivia", "mark", "mia", "eve")
        ]
        await home.org("acme", "olivia", {"mark": Role.MEMBER, "mia": Role.MEMBER})
        scene = Scene(upstream, home, owner, member, other, outsider)
        entry = {
            "name": "python",
            "source": "upstream.test/dhi/python",
            "source_tls": "disabled",
            "username": "admin",
            "password": ADMIN_PASSWORD,
        }
        status, body = await scene.call("POST", "/catalog", home.admin, json=entry)
        assert status == 201, body
        status, body = await scene.call(
            "POST", "/mirrors", scene.owner, json={"entry": "python", "org": "acme"}
        )
        assert status == 201, body
        scene.mirror = body["id"]
        await synced(scene, 1)
        certs = tar_layer([("etc/ssl/certs/mine.pem", "MINE")])
        await home.push_image("acme/rootca", "1", [certs.data], auth=scene.member)
        await home.push_image("acme/dhi-python", "3.13_taken", [b"mine"], auth=scene.member)
        await home.push_image("other/rootca", "1", [b"ca"])
        yield scene


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest_asyncio.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    """The scene of a site with no package sources."""
    async with opened(tmp_path, package_sources=[]) as found:
        yield found


async def synced(scene: Scene, count: int) -> None:
    """Wait until the mirror's `count`th sync run succeeded."""
    runs = f"/mirrors/{scene.mirror}/runs"
    async with asyncio.timeout(60):
        while True:
            _, found = await scene.call("GET", runs, scene.owner)
            ended = [r for r in found["items"] if r["outcome"] != "running"]
            if len(ended) >= count:
                assert ended[0]["outcome"] == "succeeded", found
                return
            await asyncio.sleep(0.05)


async def finished_builds(scene: Scene, uid: str, count: int) -> list[dict[str, Any]]:
    """The customization's builds once `count` of them ended (newest first)."""
    async with asyncio.timeout(60):
        while True:
            _, body = await scene.call("GET", f"/customizations/{uid}/builds", scene.owner)
            ended = [b for b in body["items"] if b["status"] not in ("queued", "running")]
            if len(ended) >= count:
                return list(body["items"])
            await asyncio.sleep(0.05)


DOCUMENT: dict[str, Any] = {
    "name": "with ca",
    "targets": [{"destination": "acme/dhi-python", "tag": "3.13"}],
    "tag_suffix": "custom",
    "contents": {
        "packages": ["curl"],
        "artifacts": [{"name": "acme/rootca:1", "includes": ["etc/ssl/certs"]}],
    },
    "accounts": {"runs-as": "app", "users": [{"name": "app", "uid": 1000}]},
    "platforms": ["linux/amd64"],
}


async def test_a_member_keeps_a_customization_and_its_first_build_is_queued(scene: Scene) -> None:
    status, body = await scene.call("POST", "/customizations", scene.member, json=DOCUMENT)
    assert status == 201, body
    uid = body["id"]
    assert body["targets"] == [
        {"destination": "acme/dhi-python", "tag": "3.13", "result_tag": "3.13_custom"}
    ]
    assert body["document"]["accounts"]["runs-as"] == "app"  # Docker's spelling
    assert body["document"]["id"] == uid
    assert body["created_by"] == "mark"
    (build,) = await finished_builds(scene, uid, 1)
    assert (build["trigger"], build["tag"], build["status"]) == ("created", "3.13", "failed")
    assert build["error"].startswith("contents.packages: this site has no package sources")
    async with scene.home.client.get(
        f"{API}/customizations/{uid}/builds/{build['id']}/log", headers=scene.member
    ) as resp:
        assert resp.status == 200
        assert "failed: contents.packages" in await resp.text()
    # listed for whoever may pull from the repository, and for nobody else
    status, listed = await scene.call("GET", "/customizations?org=acme", scene.other)
    assert [c["id"] for c in listed["items"]] == [uid]
    status, listed = await scene.call("GET", "/customizations", scene.outsider)
    assert listed["items"] == []
    status, _ = await scene.call("GET", f"/customizations/{uid}", scene.outsider)
    assert status == 404


async def test_edits_are_for_the_creator_and_the_owners(scene: Scene) -> None:
    _, body = await scene.call("POST", "/customizations", scene.member, json=DOCUMENT)
    uid = body["id"]
    edited = {**DOCUMENT, "environment": {"APP_ENV": "prod"}}
    status, body = await scene.call("PUT", f"/customizations/{uid}", scene.other, json=edited)
    assert (status, body["errors"][0]["code"]) == (403, "DENIED")
    assert "created by 'mark'" in body["errors"][0]["message"]
    status, body = await scene.call("PUT", f"/customizations/{uid}", scene.owner, json=edited)
    assert status == 200, body
    assert body["document"]["environment"] == {"APP_ENV": "prod"}
    _, builds = await scene.call("GET", f"/customizations/{uid}/builds", scene.owner)
    assert [b["trigger"] for b in builds["items"]] == ["edited", "created"]
    status, body = await scene.call(
        "PUT", f"/customizations/{uid}", scene.owner, json={**edited, "id": "0000"}
    )
    assert (status, body["errors"][0]["detail"]["field"]) == (400, "id")
    status, body = await scene.call("POST", f"/customizations/{uid}/builds", scene.member)
    assert status == 202, body
    status, _ = await scene.call("DELETE", f"/customizations/{uid}", scene.other)
    assert status == 403
    status, _ = await scene.call("DELETE", f"/customizations/{uid}", scene.member)
    assert status == 204
    status, _ = await scene.call("GET", f"/customizations/{uid}", scene.member)
    assert status == 404


@pytest.mark.parametrize(
    ("change", "status", "field", "says"),
    [
        (
            {"targets": [{"destination": "acme/dhi-ruby", "tag": "1"}]},
            400,
            "targets[0].destination",
            "no repository",
        ),
        (
            {"targets": [{"destination": "acme/rootca", "tag": "1"}]},
            400,
            "targets[0].destination",
            "not a mirrored image",
        ),
        (
            {"targets": [{"destination": "acme/dhi-python", "tag": "3.12"}]},
            400,
            "targets[0].tag",
            "no tag '3.12'",
        ),
        ({"tag_suffix": "taken"}, 409, "tag_suffix", "does not own"),
        (
            {"contents": {"artifacts": [{"name": "other/rootca:1", "includes": ["etc"]}]}},
            400,
            "contents.artifacts[0].name",
            "outside acme",
        ),
        (
            {"contents": {"artifacts": [{"name": "acme/rootca:2", "includes": ["etc"]}]}},
            400,
            "contents.artifacts[0].name",
            "no tag '2'",
        ),
        ({"platforms": ["linux"]}, 422, "body.platforms", "os/arch"),
    ],
)
async def test_each_refusal_names_its_field(
    scene: Scene, change: dict[str, Any], status: int, field: str, says: str
) -> None:
    got, body = await scene.call(
        "POST", "/customizations", scene.member, json={**DOCUMENT, **change}
    )
    assert got == status, body
    error = body["errors"][0]
    assert error["detail"]["field"] == field, error
    assert says in error["message"], error


async def test_two_customizations_cannot_own_one_tag(scene: Scene) -> None:
    status, _ = await scene.call("POST", "/customizations", scene.member, json=DOCUMENT)
    assert status == 201
    status, body = await scene.call("POST", "/customizations", scene.other, json=DOCUMENT)
    assert (status, body["errors"][0]["detail"]["field"]) == (409, "tag_suffix")


async def test_who_may_not_push_may_not_customize(scene: Scene) -> None:
    status, body = await scene.call("POST", "/customizations", scene.outsider, json=DOCUMENT)
    assert (status, body["errors"][0]["code"]) == (403, "DENIED")
    status, _ = await scene.call("POST", "/customizations", json=DOCUMENT)
    assert status == 401


async def test_a_build_pushes_the_result_tag_and_a_rebuild_changes_nothing(scene: Scene) -> None:
    document = {**DOCUMENT, "contents": {"artifacts": DOCUMENT["contents"]["artifacts"]}}
    status, body = await scene.call("POST", "/customizations", scene.member, json=document)
    assert status == 201, body
    uid = body["id"]
    (first,) = await finished_builds(scene, uid, 1)
    assert first["status"] == "succeeded", first
    assert first["changes"] == {"first": True}
    assert first["lock"]["base"]["reference"] == "acme/dhi-python:3.13"
    async with scene.home.client.head(
        "/v2/acme/dhi-python/manifests/3.13_custom",
        headers={**scene.member, "Accept": "application/vnd.oci.image.index.v1+json"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Docker-Content-Digest"] == first["digest"]
    status, _ = await scene.call("POST", f"/customizations/{uid}/builds", scene.member)
    assert status == 202
    again = (await finished_builds(scene, uid, 2))[0]
    assert (again["trigger"], again["status"], again["digest"]) == (
        "manual",
        "unchanged",
        first["digest"],
    )


async def test_a_moved_base_or_artifact_tag_rebuilds(scene: Scene) -> None:
    document = {**DOCUMENT, "contents": {"artifacts": DOCUMENT["contents"]["artifacts"]}}
    _, body = await scene.call("POST", "/customizations", scene.member, json=document)
    uid = body["id"]
    (first,) = await finished_builds(scene, uid, 1)
    assert first["status"] == "succeeded", first

    # the upstream publishes a new 3.13; the mirror's sync moves the base tag
    newer = tar_layer([("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/motd", "2")])
    await scene.upstream.push_image("dhi/python", "3.13", [newer.data])
    status, _ = await scene.call("POST", f"/mirrors/{scene.mirror}/sync", scene.owner)
    assert status == 202
    rebuilt = (await finished_builds(scene, uid, 2))[0]
    assert (rebuilt["trigger"], rebuilt["status"]) == ("base", "succeeded"), rebuilt
    assert "acme/dhi-python:3.13 moved to" in rebuilt["trigger_detail"]
    assert set(rebuilt["changes"]) >= {"base"}
    assert rebuilt["digest"] != first["digest"]

    # a new build of the artifact, pushed under the same tag
    certs = tar_layer([("etc/ssl/certs/mine.pem", "MINE, renewed")])
    await scene.home.push_image("acme/rootca", "1", [certs.data], auth=scene.member)
    again = (await finished_builds(scene, uid, 3))[0]
    assert (again["trigger"], again["status"]) == ("artifact", "succeeded"), again
    assert (
        again["changes"]["linux/amd64"]["artifacts"]["to"]
        != again["changes"]["linux/amd64"]["artifacts"]["from"]
    )


async def test_a_newer_package_version_in_the_archive_rebuilds(
    tmp_path: Path, served: Served
) -> None:
    source = PackageSource(
        distribution="debian", uri=served.url, suites=["{codename}"], keyring=served.keyring
    )
    async with opened(
        tmp_path, package_sources=[source], package_check_interval_seconds=0
    ) as scene:
        # the packages drop-down: names of the base's distribution, prefix matches first
        search = "/customizations/packages?repository=acme/dhi-python&tag=3.13&q="
        status, offers = await scene.call("GET", search + "hello", scene.member)
        assert status == 200, offers
        assert [o["name"] for o in offers] == ["hello-gz", "hello-xz", "hello-zst"]
        _, offers = await scene.call("GET", search + "xz", scene.member)
        assert offers == [{"name": "hello-xz", "version": "2.0-1", "section": ""}]
        status, _ = await scene.call("GET", search + "hello", scene.outsider)
        assert status == 403

        document = {**DOCUMENT, "contents": {"packages": ["hello-xz"]}}
        _, body = await scene.call("POST", "/customizations", scene.member, json=document)
        uid = body["id"]
        (first,) = await finished_builds(scene, uid, 1)
        assert first["status"] == "succeeded", first
        locked = first["lock"]["platforms"]["linux/amd64"]["packages"]["packages"]
        assert {p["name"]: p["version"] for p in locked} == {"hello-xz": "2.0-1", "hello-gz": "1.0"}

        rebuilds = scene.home.state.hub.rebuilds
        assert rebuilds is not None
        # nothing moved in the archive: a check queues nothing
        job = Job(1, CHECK_JOB, await _check_payload(scene, uid, first), 1, 1, None)
        await rebuilds.check_packages(job, None)  # type: ignore[arg-type]
        _, builds = await scene.call("GET", f"/customizations/{uid}/builds", scene.owner)
        assert len(builds["items"]) == 1

        # a security update of a dependency: the check finds it and the rebuild takes it
        served.repo.add(DebSpec("hello-gz", version="1.1", files={"usr/bin/hello-gz": b"new\n"}))
        served.repo.publish()
        await rebuilds.check_packages(job, None)  # type: ignore[arg-type]
        rebuilt = (await finished_builds(scene, uid, 2))[0]
        assert (rebuilt["trigger"], rebuilt["status"]) == ("packages", "succeeded"), rebuilt
        assert "hello-gz 1.0 → 1.1" in rebuilt["trigger_detail"]
        assert rebuilt["changes"]["linux/amd64"]["packages"] == {
            "hello-gz": {"from": "1.0", "to": "1.1"}
        }

        # the schedule queues a check of each built target with packages, once per interval
        rebuilds.check_interval = 3600.0
        assert await rebuilds.schedule_package_checks() == 1
        assert await rebuilds.schedule_package_checks() == 0  # not due again yet


async def _check_payload(scene: Scene, uid: str, build: dict[str, Any]) -> dict[str, Any]:
    """What the scheduled check queues for the build's target."""
    async with scene.home.state.registry.store.db.read() as conn:
        row = await customization_rows.get_customization(conn, uid)
    assert row is not None
    (target,) = row.targets
    return {
        "customization_id": row.id,
        "repository_id": target.repository_id,
        "base_tag": build["tag"],
    }
