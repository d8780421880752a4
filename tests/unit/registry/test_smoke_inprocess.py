"""The in-process app answers the base endpoint and a push/pull round trip on both databases."""

from __future__ import annotations

from support.inprocess import InProcess


async def test_push_then_pull_round_trip(registry_app: InProcess) -> None:
    app = registry_app
    digest, raw = await app.push_image("admin/app", "v1")
    async with app.client.get("/v2/admin/app/manifests/v1", headers=app.admin) as resp:
        assert resp.status == 200
        assert await resp.read() == raw
        assert resp.headers["Docker-Content-Digest"] == digest
    async with app.client.get("/v2/") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith(
            'Bearer realm="http://dockyard.test/token"'
        )
