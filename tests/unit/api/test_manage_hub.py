"""The hub through the management API, in process: catalog, mirrors and their runs, webhooks
and deliveries, jobs, and the URL upstream notifies. An in-process upstream Dockyard holds
the images; the home Dockyard's own worker runs the syncs and deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from argon2 import PasswordHasher

from dockyard.auth import secrets
from dockyard.auth.policy import Role
from support.inprocess import ADMIN_PASSWORD, Auth, InProcess, running_app
from support.peers import free_port

API = "/api/v1"


@dataclass
class Receiver:
    """A webhook receiver on loopback that records what it gets."""

    url: str
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@dataclass
class Scene:
    upstream: InProcess
    home: InProcess
    owner: Auth
    member: Auth
    receiver: Receiver

    async def call(
        self, method: str, path: str, auth: Auth | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        async with self.home.client.request(
            method, API + path, headers=auth or {}, **kwargs
        ) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    """Poll `check` until it holds (the worker runs in the background)."""
    try:
        async with asyncio.timeout(seconds):
            while not await check():  # noqa: ASYNC110 (the state is in the database)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        found.got.append((dict(request.headers), await request.read()))
        return web.Response(text="thanks")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


@pytest_asyncio.fixture
async def scene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> AsyncIterator[Scene]:
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    async with contextlib.AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(running_app(tmp_path / "up", run_workers=False))
        home = await stack.enter_async_context(
            running_app(
                tmp_path / "home",
                session_factory=upstream.session_factory(),
                webhook_allow_private=True,
            )
        )
        owner = await home.user("olivia")
        member = await home.user("mark")
        await home.org("acme", "olivia", {"mark": Role.MEMBER})
        yield Scene(upstream, home, owner, member, receiver)


async def publish(scene: Scene, tag: str, build: int = 1) -> str:
    digest, _ = await scene.upstream.push_image(
        "dhi/python", tag, [f"{tag} build {build}".encode()]
    )
    return digest


ENTRY = {
    "name": "python",
    "source": "upstream.test/dhi/python",
    "source_tls": "disabled",
    "username": "admin",
    "password": ADMIN_PASSWORD,
    "description": "Python, hardened",
    "eol_pattern": r"3\.9(-.*)?",
}


async def latest_run(scene: Scene, mirror_id: int) -> dict[str, Any] | None:
    status, body = await scene.call("GET", f"/mirrors/{mirror_id}/runs", scene.owner)
    assert status == 200, body
    return body["items"][0] if body["items"] else None


async def finished_runs(scene: Scene, mirror_id: int, count: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal runs
        _, body = await scene.call("GET", f"/mirrors/{mirror_id}/runs", scene.owner)
        runs = body["items"]
        return len(runs) >= count and all(r["outcome"] != "running" for r in runs)

    await until(done, f"{count} finished runs of mirror {mirror_id}")
    return runs


async def test_catalog_is_for_site_admins_to_change(scene: Scene) -> None:
    admin = scene.home.admin
    status, body = await scene.call("POST", "/catalog", scene.owner, json=ENTRY)
    assert (status, body["errors"][0]["code"]) == (403, "DENIED")
    assert "site admin" in body["errors"][0]["message"]
    status, body = await scene.call("POST", "/catalog", json=ENTRY)
    assert status == 401
    status, body = await scene.call("POST", "/catalog", admin, json=ENTRY)
    assert status == 201, body
    assert body["hook_url"].startswith("http://dockyard.test/api/v1/catalog/hooks/")
    assert body["has_credentials"] is True
    assert "password" not in body
    status, body = await scene.call("POST", "/catalog", admin, json=ENTRY)
    assert (status, body["errors"][0]["code"]) == (409, "CONFLICT")
    status, body = await scene.call(
        "POST", "/catalog", admin, json={**ENTRY, "name": "x", "source": "a/b:1"}
    )
    assert (status, body["errors"][0]["code"]) == (400, "INVALID_REQUEST")
    status, body = await scene.call("GET", "/catalog", scene.member)
    assert [e["name"] for e in body["items"]] == ["python"]
    status, body = await scene.call("GET", "/catalog/ruby", scene.member)
    assert (status, body["errors"][0]["code"]) == (404, "NOT_FOUND")


async def test_site_admins_edit_catalog_entries(scene: Scene) -> None:
    admin = scene.home.admin
    await publish(scene, "3.13")
    await scene.call("POST", "/catalog", admin, json=ENTRY)
    path = "/catalog/python"
    status, body = await scene.call("PATCH", path, scene.owner, json={"description": "x"})
    assert (status, body["errors"][0]["code"]) == (403, "DENIED")
    for refused, code in (
        ({"name": "ruby"}, 422),  # the name and kind stay: mirrors are named after them
        ({"source_tls": "maybe"}, 422),
        ({"source": None}, 400),
        ({"source": "a/b:1"}, 400),
        ({"eol_pattern": "("}, 400),
    ):
        status, body = await scene.call("PATCH", path, admin, json=refused)
        assert status == code, (refused, body)
    status, body = await scene.call("PATCH", "/catalog/ruby", admin, json={"description": "x"})
    assert status == 404
    await scene.call("POST", f"{path}/refresh", admin)
    status, body = await scene.call(
        "PATCH", path, admin, json={"description": "new", "username": None, "eol_pattern": None}
    )
    assert status == 200, body
    assert (body["description"], body["has_credentials"], body["eol_pattern"]) == (
        "new",
        False,
        None,
    )
    assert [t["tag"] for v in body["variants"] for t in v["tags"]] == ["3.13"]  # same source
    status, body = await scene.call("PATCH", path, admin, json={"source": "upstream.test/dhi/x"})
    assert (status, body["source"], body["variants"]) == (200, "upstream.test/dhi/x", [])


async def test_mirror_through_the_api_and_notify(scene: Scene) -> None:
    admin = scene.home.admin
    await publish(scene, "3.13")
    await publish(scene, "3.13-dev")
    await publish(scene, "3.9")
    _, entry = await scene.call("POST", "/catalog", admin, json=ENTRY)

    status, body = await scene.call(
        "POST", "/mirrors", scene.member, json={"entry": "python", "org": "acme"}
    )
    assert status == 403
    assert "only owners of organization 'acme' can mirror" in body["errors"][0]["message"]
    status, mirror = await scene.call(
        "POST", "/mirrors", scene.owner, json={"entry": "python", "org": "acme"}
    )
    assert status == 201, mirror
    assert (mirror["repository"], mirror["status"]) == ("acme/dhi-python", "active")
    (run,) = await finished_runs(scene, mirror["id"], 1)
    assert (run["outcome"], run["trigger"], run["tags_added"]) == ("succeeded", "create", 2)

    status, shown = await scene.call("GET", "/catalog/python", scene.member)
    variants = {v["name"]: [t["tag"] for t in v["tags"]] for v in shown["variants"]}
    assert variants == {"standard": ["3.13", "3.9"], "dev": ["3.13-dev"]}
    assert [t["eol"] for t in shown["variants"][0]["tags"]] == [False, True]
    assert shown["mirrored_to"] == [
        {"id": mirror["id"], "repository": "acme/dhi-python", "status": "active"}
    ]
    status, repo = await scene.call("GET", "/repositories/acme/dhi-python", scene.member)
    assert (status, repo["visibility"]) == (200, "private")

    # a webhook on the mirrored repository, then upstream pushes and notifies
    status, hook = await scene.call(
        "POST",
        "/repositories/acme/dhi-python/-/webhooks",
        scene.owner,
        json={"name": "ci", "url": scene.receiver.url, "secret": "s3cret"},
    )
    assert status == 201, hook
    assert hook["has_secret"] is True
    _, listed = await scene.call("GET", "/repositories/acme/dhi-python/-/webhooks", scene.owner)
    assert [h["name"] for h in listed["items"]] == ["ci"]
    new = await publish(scene, "3.14")
    async with scene.home.client.post(
        entry["hook_url"].removeprefix("http://dockyard.test"),
        json={"push_data": {"tag": "3.14"}, "repository": {"repo_name": "dhi/python"}},
    ) as resp:
        assert resp.status == 202
        assert await resp.json() == {"queued": 1}
    runs = await finished_runs(scene, mirror["id"], 2)
    assert (runs[0]["trigger"], runs[0]["tags_added"], runs[0]["tags_unchanged"]) == (
        "webhook",
        1,
        2,
    )

    await until(lambda: _got(scene), "the webhook delivery")
    headers, body = scene.receiver.got[0]
    payload = json.loads(body)
    assert payload["push_data"]["tag"] == "3.14"
    assert payload["push_data"]["pusher"] == "dockyard-mirror"
    assert payload["repository"]["repo_name"] == "acme/dhi-python"
    assert payload["push_data"]["digest"] == new
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Dockyard-Signature-256"] == f"sha256={signature}"

    async def delivered() -> bool:
        _, page = await scene.call(
            "GET",
            f"/repositories/acme/dhi-python/-/webhooks/{hook['id']}/deliveries",
            scene.owner,
        )
        return bool(page["items"]) and page["items"][0]["status"] == "delivered"

    await until(delivered, "the delivery to be recorded")
    _, page = await scene.call(
        "GET", f"/repositories/acme/dhi-python/-/webhooks/{hook['id']}/deliveries", scene.owner
    )
    delivery = page["items"][0]
    assert (delivery["response_status"], delivery["response_excerpt"]) == (200, "thanks")
    callback = payload["callback_url"].removeprefix(scene.home.settings.public_url or "")
    status, answer = await scene.call(
        "POST", callback[callback.index("/api/v1") + len(API) :], json={"state": "success"}
    )
    assert (status, answer["state"]) == (200, "success")

    # a client's own push is announced the same way, naming who pushed
    await scene.home.push_image("acme/dhi-python", "local", auth=scene.owner)
    await until(lambda: _got(scene, 2), "the delivery of the owner's push")
    pushed = json.loads(scene.receiver.got[1][1])
    assert (pushed["push_data"]["tag"], pushed["push_data"]["pusher"]) == ("local", "olivia")

    status, jobs = await scene.call("GET", "/jobs", scene.owner)
    assert status == 403
    status, jobs = await scene.call("GET", "/jobs?state=succeeded", scene.home.admin)
    assert {j["kind"] for j in jobs["items"]} == {"mirror.sync", "webhook.deliver"}


async def _got(scene: Scene, count: int = 1) -> bool:
    return len(scene.receiver.got) >= count


async def test_owners_pause_stop_and_toggle_end_of_life(scene: Scene) -> None:
    await publish(scene, "3.13")
    await scene.call("POST", "/catalog", scene.home.admin, json=ENTRY)
    _, mirror = await scene.call(
        "POST", "/mirrors", scene.owner, json={"entry": "python", "org": "acme"}
    )
    await finished_runs(scene, mirror["id"], 1)
    path = f"/mirrors/{mirror['id']}"

    status, changed = await scene.call("PATCH", path, scene.owner, json={"include_eol": True})
    assert (status, changed["include_eol"]) == (200, True)
    # the same option, as the repository's setting
    repo = "/repositories/acme/dhi-python"
    assert (await scene.call("GET", repo, scene.member))[1]["els"] is True
    status, shown = await scene.call("PATCH", repo, scene.owner, json={"els": False})
    assert (status, shown["els"]) == (200, False)
    assert (await scene.call("GET", path, scene.owner))[1]["include_eol"] is False
    await scene.home.push_image("acme/plain", "1")
    status, body = await scene.call(
        "PATCH", "/repositories/acme/plain", scene.owner, json={"els": True}
    )
    assert (status, body["errors"][0]["code"]) == (409, "CONFLICT")
    assert (await scene.call("GET", "/repositories/acme/plain", scene.owner))[1]["els"] is None
    status, body = await scene.call("PATCH", path, scene.member, json={"include_eol": False})
    assert status == 403

    await scene.call(
        "PATCH", "/repositories/acme/dhi-python", scene.owner, json={"visibility": "public"}
    )
    scene.home.state.registry.forget_cached()
    # a sync asked for now is refused, not queued to "succeed" copying nothing
    status, body = await scene.call("POST", f"{path}/sync", scene.owner)
    assert (status, body["errors"][0]["code"]) == (409, "CONFLICT")
    message = body["errors"][0]["message"]
    assert f"mirror {mirror['id']} of acme/dhi-python is paused" in message
    assert "dockyard admin repo set acme/dhi-python --visibility private" in message
    _, shown = await scene.call("GET", path, scene.owner)
    assert shown["status"] == "paused"
    assert "must stay private" in shown["status_reason"]

    status, body = await scene.call("POST", f"{path}/stop", scene.member)
    assert status == 403
    status, stopped = await scene.call("POST", f"{path}/stop", scene.owner)
    assert (status, stopped["status"]) == (200, "stopped")
    status, body = await scene.call("POST", f"{path}/sync", scene.owner)
    assert (status, body["errors"][0]["code"]) == (409, "CONFLICT")
