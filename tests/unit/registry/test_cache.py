"""The read cache: bounded, expiring, and never hiding this process's own writes."""

from __future__ import annotations

import pytest

from dockyard.auth.policy import Subject
from dockyard.registry import cache as cache_module
from dockyard.registry.cache import ReadCache
from support.inprocess import InProcess

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_entries_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    cache: ReadCache[str] = ReadCache(ttl=1.0)
    cache.put("k", "v")
    assert cache.get("k") == "v"
    now[0] += 1.5
    assert cache.get("k") is None


def test_least_recently_written_entries_go_first() -> None:
    cache: ReadCache[int] = ReadCache(ttl=60, size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)


def test_zero_ttl_caches_nothing_and_prefixes_forget() -> None:
    assert ReadCache[int](ttl=0).get("a") is None
    cache: ReadCache[int] = ReadCache(ttl=60)
    cache.put(("tag", 1, "a"), 1)
    cache.put(("tag", 2, "a"), 2)
    cache.forget_where(("tag", 1))
    assert (cache.get(("tag", 1, "a")), cache.get(("tag", 2, "a"))) == (None, 2)


async def _digest_of(app: InProcess, path: str) -> tuple[int, str | None]:
    async with app.client.get(path, headers=app.admin) as resp:
        return resp.status, resp.headers.get("Docker-Content-Digest")


async def test_a_moved_tag_is_read_back_at_once(registry_app: InProcess) -> None:
    app = registry_app
    first, _ = await app.push_image("admin/cache", "v1")
    assert await _digest_of(app, "/v2/admin/cache/manifests/v1") == (200, first)  # now cached
    second, _ = await app.push_image("admin/cache", "v1", layers=[b"another layer"])
    assert await _digest_of(app, "/v2/admin/cache/manifests/v1") == (200, second)


async def test_deletes_are_read_back_at_once(registry_app: InProcess) -> None:
    app = registry_app
    digest, _ = await app.push_image("admin/cache", "gone")
    layer = await app.push_blob("admin/cache", b"a loose blob")
    for path in (f"/v2/admin/cache/manifests/{digest}", "/v2/admin/cache/manifests/gone"):
        assert (await _digest_of(app, path))[0] == 200
    async with app.client.head(f"/v2/admin/cache/blobs/{layer}", headers=app.admin) as resp:
        assert resp.status == 200
    async with app.client.delete(f"/v2/admin/cache/manifests/{digest}", headers=app.admin) as resp:
        assert resp.status == 202
    async with app.client.delete(f"/v2/admin/cache/blobs/{layer}", headers=app.admin) as resp:
        assert resp.status == 202
    for path in (f"/v2/admin/cache/manifests/{digest}", "/v2/admin/cache/manifests/gone"):
        assert (await _digest_of(app, path))[0] == 404
    async with app.client.head(f"/v2/admin/cache/blobs/{layer}", headers=app.admin) as resp:
        assert resp.status == 404


async def test_settings_changes_apply_at_once(registry_app: InProcess) -> None:
    app = registry_app
    await app.push_image("admin/cache", "v1")
    assert (await _digest_of(app, "/v2/admin/cache/manifests/v1"))[0] == 200
    async with app.client.get("/v2/admin/cache/manifests/v1") as resp:
        assert resp.status == 401  # private
    site_admin = Subject(name="admin", is_admin=True)
    await app.state.registry.repositories.configure(site_admin, "admin/cache", visibility="public")
    async with app.client.get("/v2/admin/cache/manifests/v1") as resp:
        assert resp.status == 200
