"""The read cache: bounded, expiring, and never hiding a write made on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.auth.policy import Subject
from dockyard.registry import cache as cache_module
from dockyard.registry.cache import ReadCache
from dockyard.storage.generation import Generation
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


def test_zero_ttl_caches_nothing_and_a_write_voids_every_entry() -> None:
    assert ReadCache[int](ttl=0).get("a") is None
    cache: ReadCache[int] = ReadCache(ttl=60)
    cache.put(("tag", 1, "a"), 1)
    cache.put(("tag", 2, "a"), 2)
    cache.invalidate()
    # a write voids every entry of the host, the others included: they are loaded again
    assert (cache.get(("tag", 1, "a")), cache.get(("tag", 2, "a"))) == (None, None)


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


def test_a_write_by_another_worker_voids_this_workers_entries(tmp_path: Path) -> None:
    # two workers of one host: two processes mapping the same stamp file
    one = ReadCache[str](ttl=60, generation=Generation(tmp_path / "stamp"))
    two = ReadCache[str](ttl=60, generation=Generation(tmp_path / "stamp"))
    one.put("tag", "old")
    two.put("tag", "old")
    two.invalidate()  # worker two moved the tag and committed
    assert one.get("tag") is None
    one.put("other", "kept")
    assert one.get("other") == "kept"  # loaded after the write: valid


async def test_a_value_loaded_while_a_write_lands_is_not_kept(tmp_path: Path) -> None:
    cache = ReadCache[str](ttl=60, generation=Generation(tmp_path / "stamp"))
    elsewhere = Generation(tmp_path / "stamp")

    async def load() -> str:
        elsewhere.bump()  # another worker commits while this read is in flight
        return "read before the commit"

    assert await cache.fetch("tag", load) == "read before the commit"
    assert cache.get("tag") is None  # not served again

    async def load_again() -> str:
        return "read after the commit"

    assert await cache.fetch("tag", load_again) == "read after the commit"
    assert cache.get("tag") == "read after the commit"


def test_the_stamp_file_survives_and_is_shared(tmp_path: Path) -> None:
    first = Generation(tmp_path / "run" / "stamp")
    first.bump()
    second = Generation(tmp_path / "run" / "stamp")
    assert second.current() == first.current()
    second.bump()
    assert first.current() == second.current()
    first.close()
    second.close()


async def test_a_push_keeps_verified_credentials_an_account_change_does_not(
    sqlite_app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sqlite_app
    accounts = app.state.accounts
    await app.push_image("admin/keep", "v1")  # the admin's Basic credentials are verified
    checks = 0
    check = accounts._check

    async def counted(username: str, secret: str) -> Subject | None:
        nonlocal checks
        checks += 1
        return await check(username, secret)

    monkeypatch.setattr(accounts, "_check", counted)
    await app.push_image("admin/keep", "v1", layers=[b"moved"])  # voids the content caches
    assert (await _digest_of(app, "/v2/admin/keep/manifests/v1"))[0] == 200
    assert checks == 0  # no argon2 again after a push
    await accounts.create_org("keepers", "admin")  # an account change voids credentials
    assert (await _digest_of(app, "/v2/admin/keep/manifests/v1"))[0] == 200
    assert checks == 1
