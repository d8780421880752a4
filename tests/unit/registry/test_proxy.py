"""The pull-through cache in process: a Dockyard mirror in front of an upstream Dockyard, both
apps in this process, the mirror reaching upstream through a gate that counts requests and can
play dead."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp_asgi_connector import ASGIApplicationConnector

from dockyard.app import create_app, open_store
from dockyard.client.settings import RegistrySettings
from dockyard.config import ConfigError, ProxyUpstream, Settings, load_settings
from dockyard.oci.reference import Reference
from dockyard.registry.proxy import PullThrough
from dockyard.registry.proxy_routes import ProxyRoutes
from support.inprocess import ADMIN_PASSWORD, BASE, InProcess, basic, running_app

UPSTREAM = "http://upstream.test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Gate:
    """ASGI middleware in front of the upstream app: records `(method, path, status)` of each
    request and, while `down`, answers every request with `status` (503: down for
    maintenance)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.down = False
        self.status = 503
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.down:
            self.seen.append((scope["method"], scope["path"], self.status))
            await send({"type": "http.response.start", "status": self.status, "headers": []})
            await send({"type": "http.response.body", "body": b"not now"})
            return

        async def recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, recording)

    def requests(self, method: str, part: str) -> int:
        """How many `method` requests with `part` in their path were answered (challenges
        for credentials not counted)."""
        return sum(
            1 for m, path, status in self.seen if m == method and part in path and status != 401
        )


class Upstream:
    def __init__(self, app: InProcess) -> None:
        self.app = app
        self.gate = Gate(app.app)

    def sessions(self, _settings: RegistrySettings) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=ASGIApplicationConnector(self.gate), auto_decompress=False
        )


@pytest_asyncio.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    async with running_app(tmp_path / "upstream", run_workers=False) as app:
        yield Upstream(app)


MirrorFactory = Callable[..., contextlib.AbstractAsyncContextManager[InProcess]]


@pytest.fixture
def mirror_for(tmp_path: Path, upstream: Upstream) -> MirrorFactory:
    """`async with mirror_for(**proxy_fields) as mirror:` a Dockyard pulling through upstream
    (as its admin unless `username=None`); `database_url` picks its database."""
    counter = iter(range(100))

    @contextlib.asynccontextmanager
    async def start(database_url: str | None = None, **fields: Any) -> AsyncIterator[InProcess]:
        fields.setdefault("url", UPSTREAM)
        fields.setdefault("username", "admin")
        fields.setdefault("password", ADMIN_PASSWORD if fields["username"] else None)
        settings = Settings(
            data=tmp_path / f"mirror{next(counter)}",
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            run_workers=False,
            proxies=[ProxyUpstream(**fields)],
        )
        app = create_app(settings, session_factory=upstream.sessions)
        async with app.router.lifespan_context(app):
            connector = ASGIApplicationConnector(app)
            async with aiohttp.ClientSession(base_url=BASE, connector=connector) as client:
                admin = basic("admin", ADMIN_PASSWORD)
                yield InProcess(client, app.state.dockyard, settings, admin, app)

    return start


@pytest_asyncio.fixture
async def mirror(mirror_for: MirrorFactory) -> AsyncIterator[InProcess]:
    """The global mirror (no namespace), as a Docker daemon's registry-mirrors entry."""
    async with mirror_for() as running:
        yield running


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.peers)])
async def any_mirror(
    mirror_for: MirrorFactory, request: pytest.FixtureRequest
) -> AsyncIterator[InProcess]:
    """The global mirror, once on SQLite and once on PostgreSQL."""
    url = request.getfixturevalue("postgres_database_url") if request.param == "postgres" else None
    async with mirror_for(database_url=url) as running:
        yield running


def pull_through(app: InProcess) -> PullThrough:
    found = app.state.registry.pull_through
    assert found is not None
    return found


def later(app: InProcess, seconds: float) -> None:
    """Move the mirror's clock `seconds` ahead of now."""
    pull_through(app).clock = lambda: time.time() + seconds


async def get(
    app: InProcess, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, Mapping[str, str], bytes]:
    """Status, headers (any case) and body of one request to `app`."""
    accept = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
    async with app.client.request(method, path, headers={**accept, **(headers or {})}) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


def code_of(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


async def push_index(app: InProcess, repo: str, tag: str, children: list[tuple[str, bytes]]) -> str:
    """Push an index over manifests pushed before (digest, raw), amd64 then arm64."""
    platforms = [{"os": "linux", "architecture": arch} for arch in ("amd64", "arm64")]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": len(raw), "platform": p}
                for (d, raw), p in zip(children, platforms, strict=False)
            ],
        }
    ).encode()
    async with app.client.put(
        f"/v2/{repo}/manifests/{tag}",
        data=index,
        headers={**app.admin, "Content-Type": OCI_INDEX},
    ) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["Docker-Content-Digest"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- pulling through -------------------------------------------------------------------------


async def test_a_miss_is_fetched_cached_and_then_served_locally(
    upstream: Upstream, any_mirror: InProcess
) -> None:
    mirror = any_mirror
    layer = b"layer bytes of alpine 1"
    digest, raw = await upstream.app.push_image("library/alpine", "1", [layer])
    status, headers, body = await get(mirror, "/v2/library/alpine/manifests/1")
    assert status == 200, body
    assert (body, headers["Docker-Content-Digest"]) == (raw, digest)
    status, headers, body = await get(mirror, f"/v2/library/alpine/blobs/{sha256(layer)}")
    assert (status, body) == (200, layer)
    before = list(upstream.gate.seen)
    for _ in range(2):  # within the TTL: nothing asks upstream
        assert (await get(mirror, "/v2/library/alpine/manifests/1"))[2] == raw
        assert (await get(mirror, f"/v2/library/alpine/manifests/{digest}"))[2] == raw
        assert (await get(mirror, f"/v2/library/alpine/blobs/{sha256(layer)}"))[2] == layer
    assert upstream.gate.seen == before
    repository = await mirror.state.registry.repositories.get("library/alpine")
    assert repository is not None
    assert repository.is_public


async def test_a_docker_daemon_pulls_anonymously_with_a_token(
    upstream: Upstream, mirror: InProcess
) -> None:
    layer = b"anonymous layer"
    digest, _ = await upstream.app.push_image("library/nginx", "latest", [layer])
    status, headers, _ = await get(mirror, "/v2/")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer ")
    async with mirror.client.get(
        "/token", params={"service": "dockyard", "scope": "repository:library/nginx:pull"}
    ) as resp:
        assert resp.status == 200
        token = (await resp.json())["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    status, headers, _ = await get(mirror, "/v2/library/nginx/manifests/latest", bearer)
    assert (status, headers["Docker-Content-Digest"]) == (200, digest)
    status, _, body = await get(mirror, f"/v2/library/nginx/blobs/{sha256(layer)}", bearer)
    assert (status, body) == (200, layer)


async def test_an_anonymous_upstream_is_pulled_anonymously(
    upstream: Upstream, mirror_for: MirrorFactory
) -> None:
    digest, _ = await upstream.app.push_image("library/busybox", "1", [b"busybox"])
    async with mirror_for(username=None) as mirror:
        status, _, body = await get(mirror, "/v2/library/busybox/manifests/1")
        assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")  # upstream: private
        admin = await upstream.app.state.accounts.subject("admin")
        await upstream.app.state.registry.repositories.configure(
            admin, "library/busybox", visibility="public"
        )
        status, headers, _ = await get(mirror, "/v2/library/busybox/manifests/1")
        assert (status, headers["Docker-Content-Digest"]) == (200, digest)


async def test_a_tag_is_checked_again_after_its_ttl(
    upstream: Upstream, any_mirror: InProcess
) -> None:
    mirror = any_mirror
    first, _ = await upstream.app.push_image("library/redis", "7", [b"redis one"])
    assert (await get(mirror, "/v2/library/redis/manifests/7"))[1]["Docker-Content-Digest"] == first
    upstream.gate.seen.clear()
    later(mirror, 200)  # the default TTL is 300 s: still fresh
    assert (await get(mirror, "/v2/library/redis/manifests/7"))[1]["Docker-Content-Digest"] == first
    assert upstream.gate.seen == []
    later(mirror, 400)  # stale, but upstream did not move: one HEAD, no GET
    assert (await get(mirror, "/v2/library/redis/manifests/7"))[1]["Docker-Content-Digest"] == first
    assert upstream.gate.requests("HEAD", "/manifests/7") == 1
    assert upstream.gate.requests("GET", "/manifests/") == 0
    second, raw = await upstream.app.push_image("library/redis", "7", [b"redis two"])
    later(mirror, 600)  # confirmed at +400, so fresh until +700
    assert (await get(mirror, "/v2/library/redis/manifests/7"))[1]["Docker-Content-Digest"] == first
    later(mirror, 800)
    status, headers, body = await get(mirror, "/v2/library/redis/manifests/7")
    assert (status, headers["Docker-Content-Digest"], body) == (200, second, raw)
    # the first manifest stays cached by digest
    status, _, _ = await get(mirror, f"/v2/library/redis/manifests/{first}")
    assert status == 200


async def test_cached_content_is_served_while_upstream_is_down(
    upstream: Upstream, mirror: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    layer, other = b"postgres layer", b"never pulled"
    digest, raw = await upstream.app.push_image("library/postgres", "16", [layer, other])
    await get(mirror, "/v2/library/postgres/manifests/16")
    await get(mirror, f"/v2/library/postgres/blobs/{sha256(layer)}")
    upstream.gate.down = True
    later(mirror, 10_000)
    status, headers, body = await get(mirror, "/v2/library/postgres/manifests/16")
    assert (status, headers["Docker-Content-Digest"], body) == (200, digest, raw)
    assert "serving the cached library/postgres:16" in caplog.text
    status, _, body = await get(mirror, f"/v2/library/postgres/blobs/{sha256(layer)}")
    assert (status, body) == (200, layer)
    # what was never fetched cannot be served
    status, _, body = await get(mirror, f"/v2/library/postgres/blobs/{sha256(other)}")
    assert (status, code_of(body)) == (503, "UNAVAILABLE")
    status, _, body = await get(mirror, "/v2/library/postgres/manifests/17")
    assert (status, code_of(body)) == (503, "UNAVAILABLE")
    assert b"cannot answer now" in body
    upstream.gate.down = False
    status, _, body = await get(mirror, f"/v2/library/postgres/blobs/{sha256(other)}")
    assert (status, body) == (200, other)


async def test_a_refusing_upstream_keeps_the_cache_but_gives_nothing_new(
    upstream: Upstream, mirror: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    digest, _ = await upstream.app.push_image("library/mysql", "8", [b"mysql"])
    assert (await get(mirror, "/v2/library/mysql/manifests/8"))[0] == 200
    upstream.gate.down, upstream.gate.status = True, 403  # say, credentials that expired
    later(mirror, 10_000)
    status, headers, _ = await get(mirror, "/v2/library/mysql/manifests/8")
    assert (status, headers["Docker-Content-Digest"]) == (200, digest)
    assert "serving the cached library/mysql:8" in caplog.text
    status, _, body = await get(mirror, "/v2/library/mysql/manifests/9")
    assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")


async def test_an_unreachable_upstream_with_nothing_cached_is_503(tmp_path: Path) -> None:
    with socket_closed() as port:
        proxy = ProxyUpstream(url=f"http://127.0.0.1:{port}")
        async with running_app(tmp_path / "mirror", run_workers=False, proxies=[proxy]) as mirror:
            status, _, body = await get(mirror, "/v2/library/alpine/manifests/latest")
    assert (status, code_of(body)) == (503, "UNAVAILABLE")


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A loopback port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


async def test_what_upstream_does_not_have_is_unknown(
    upstream: Upstream, mirror: InProcess
) -> None:
    await upstream.app.push_image("library/alpine", "1", [b"alpine"])
    status, _, body = await get(mirror, "/v2/library/alpine/manifests/nope")
    assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")
    status, _, body = await get(mirror, "/v2/library/nothing/manifests/1")
    assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")
    status, _, body = await get(mirror, f"/v2/library/alpine/blobs/{sha256(b'nope')}")
    assert (status, code_of(body)) == (404, "BLOB_UNKNOWN")
    # nothing was made for a repository upstream does not have
    assert await mirror.state.registry.repositories.get("library/nothing") is None


async def test_a_tag_gone_upstream_is_unknown_after_its_ttl(
    upstream: Upstream, mirror: InProcess
) -> None:
    await upstream.app.push_image("library/gone", "1", [b"gone"])
    assert (await get(mirror, "/v2/library/gone/manifests/1"))[0] == 200
    async with upstream.app.client.delete(
        "/v2/library/gone/manifests/1", headers=upstream.app.admin
    ) as resp:
        assert resp.status == 202
    later(mirror, 1000)
    status, _, body = await get(mirror, "/v2/library/gone/manifests/1")
    assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")


async def test_concurrent_misses_share_one_upstream_fetch(
    upstream: Upstream, any_mirror: InProcess
) -> None:
    mirror = any_mirror
    layer = b"x" * (3 * 1024 * 1024)
    await upstream.app.push_image("library/big", "1", [layer])
    results = await asyncio.gather(
        *(get(mirror, f"/v2/library/big/blobs/{sha256(layer)}") for _ in range(5)),
        *(get(mirror, "/v2/library/big/manifests/1") for _ in range(5)),
    )
    assert [status for status, _, _ in results] == [200] * 10
    assert all(body == layer for _, _, body in results[:5])
    assert upstream.gate.requests("GET", f"/blobs/{sha256(layer)}") == 1
    assert upstream.gate.requests("GET", "/manifests/1") == 1
    assert len(pull_through(mirror)._flights) == 0


async def test_a_blob_stored_here_already_is_linked_without_downloading(
    upstream: Upstream, any_mirror: InProcess
) -> None:
    mirror = any_mirror
    shared = b"a base layer both images have"
    await upstream.app.push_image("library/one", "1", [shared])
    await upstream.app.push_image("library/two", "1", [shared])
    assert (await get(mirror, f"/v2/library/one/blobs/{sha256(shared)}"))[0] == 200
    status, _, body = await get(mirror, f"/v2/library/two/blobs/{sha256(shared)}")
    assert (status, body) == (200, shared)
    assert upstream.gate.requests("GET", f"/blobs/{sha256(shared)}") == 1
    assert upstream.gate.requests("HEAD", f"/library/two/blobs/{sha256(shared)}") == 1


async def test_a_blob_head_asks_upstream_without_fetching(
    upstream: Upstream, mirror: InProcess
) -> None:
    layer = b"head only"
    await upstream.app.push_image("library/head", "1", [layer])
    status, headers, _ = await get(mirror, f"/v2/library/head/blobs/{sha256(layer)}", method="HEAD")
    assert (status, headers["Content-Length"]) == (200, str(len(layer)))
    assert upstream.gate.requests("GET", "/blobs/") == 0
    assert await mirror.state.registry.repositories.get("library/head") is None


async def test_an_index_is_cached_without_the_platforms_nobody_pulls(
    upstream: Upstream, mirror: InProcess
) -> None:
    up = upstream.app
    amd = await up.push_image("library/multi", "amd64", [b"amd64 layer"])
    arm = await up.push_image("library/multi", "arm64", [b"arm64 layer"])
    index = await push_index(up, "library/multi", "latest", [amd, arm])
    status, headers, _ = await get(mirror, "/v2/library/multi/manifests/latest")
    assert (status, headers["Docker-Content-Digest"]) == (200, index)
    status, _, body = await get(mirror, f"/v2/library/multi/manifests/{amd[0]}")
    assert (status, body) == (200, amd[1])
    assert (await get(mirror, f"/v2/library/multi/blobs/{sha256(b'amd64 layer')}"))[0] == 200
    assert upstream.gate.requests("GET", arm[0]) == 0
    assert upstream.gate.requests("GET", sha256(b"arm64 layer")) == 0
    upstream.gate.down = True  # cached by digest: served without upstream
    assert (await get(mirror, f"/v2/library/multi/manifests/{amd[0]}"))[0] == 200


# --- access ----------------------------------------------------------------------------------


async def test_pushes_to_a_cache_repository_are_refused(
    upstream: Upstream, mirror: InProcess
) -> None:
    await upstream.app.push_image("library/alpine", "1", [b"alpine"])
    assert (await get(mirror, "/v2/library/alpine/manifests/1"))[0] == 200
    async with mirror.client.post(
        "/v2/library/alpine/blobs/uploads/", headers=mirror.admin
    ) as resp:
        assert resp.status == 403
        error = (await resp.json())["errors"][0]
    assert error["code"] == "DENIED"
    assert f"read-only cache of {UPSTREAM}/library/alpine" in error["message"]
    async with mirror.client.delete("/v2/library/alpine/manifests/1", headers=mirror.admin) as resp:
        assert resp.status == 202  # an admin may still purge the cache


async def test_the_mirror_leaves_new_and_local_repositories_alone(
    upstream: Upstream, mirror: InProcess
) -> None:
    # a push to a repository that does not exist makes a local one, which is never proxied
    digest, _ = await mirror.push_image("team/app", "1", [b"local"])
    await upstream.app.push_image("team/app", "1", [b"upstream"])
    status, headers, _ = await get(mirror, "/v2/team/app/manifests/1", mirror.admin)
    assert (status, headers["Docker-Content-Digest"]) == (200, digest)
    # nor are the repositories of local users and organizations, existing or not
    await mirror.user("alice")
    await upstream.app.push_image("alice/tool", "1", [b"not alice's"])
    status, _, body = await get(mirror, "/v2/alice/tool/manifests/1", mirror.admin)
    assert (status, code_of(body)) == (404, "NAME_UNKNOWN")
    assert upstream.gate.requests("GET", "/team/app/") == 0
    assert upstream.gate.requests("GET", "/alice/") == 0


async def test_a_private_cache_follows_the_policy(
    upstream: Upstream, mirror_for: MirrorFactory
) -> None:
    digest, _ = await upstream.app.push_image("library/secret", "1", [b"secret"])
    async with mirror_for(visibility="private") as mirror:
        status, _, body = await get(mirror, "/v2/library/secret/manifests/1")
        assert (status, code_of(body)) == (401, "UNAUTHORIZED")
        assert upstream.gate.seen == []
        status, headers, _ = await get(mirror, "/v2/library/secret/manifests/1", mirror.admin)
        assert (status, headers["Docker-Content-Digest"]) == (200, digest)
        repository = await mirror.state.registry.repositories.get("library/secret")
        assert repository is not None
        assert not repository.is_public
        status, _, _ = await get(mirror, "/v2/library/secret/manifests/1")
        assert status == 401


async def test_a_namespace_maps_onto_upstream_repositories(
    upstream: Upstream, mirror_for: MirrorFactory
) -> None:
    digest, _ = await upstream.app.push_image("library/alpine", "3", [b"alpine 3"])
    async with mirror_for(namespace="hub") as mirror:
        status, headers, _ = await get(mirror, "/v2/hub/library/alpine/manifests/3")
        assert (status, headers["Docker-Content-Digest"]) == (200, digest)
        assert upstream.gate.requests("GET", "/v2/library/alpine/manifests/3") == 1
        # outside the namespace, nothing is proxied
        status, _, body = await get(mirror, "/v2/library/alpine/manifests/3", mirror.admin)
        assert (status, code_of(body)) == (404, "NAME_UNKNOWN")
        # and nothing may be pushed under it, even where nothing is cached yet
        async with mirror.client.post("/v2/hub/mine/blobs/uploads/", headers=mirror.admin) as resp:
            assert resp.status == 403


def test_docker_hub_names_gain_library(tmp_path: Path) -> None:
    hub = ProxyUpstream(namespace="hub", url="https://registry-1.docker.io")
    ghcr = ProxyUpstream(namespace="hub/ghcr", url="https://ghcr.io")
    mirror = ProxyUpstream(url="https://mirror.gcr.io")
    routes = ProxyRoutes(open_store(Settings(data=tmp_path / "routes")), [hub, ghcr, mirror])

    def remote(name: str) -> Reference | None:
        route = routes.match(name)
        return route.remote if route is not None else None

    assert remote("hub/nginx") == Reference("docker.io", "library/nginx")
    assert remote("hub/bitnami/redis") == Reference("docker.io", "bitnami/redis")
    assert remote("hub/ghcr/owner/app") == Reference("ghcr.io", "owner/app")
    assert remote("library/nginx") == Reference("mirror.gcr.io", "library/nginx")
    route = routes.match("nginx")
    assert route is not None
    assert (route.mirror, route.remote.repository) == (True, "nginx")


# --- configuration ---------------------------------------------------------------------------


def test_proxies_from_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("DOCKYARD_")]:
        monkeypatch.delenv(key)
    config = tmp_path / "dockyard.yaml"
    config.write_text(
        "proxies:\n"
        "  - url: https://registry-1.docker.io\n"
        "  - namespace: ghcr\n"
        "    url: https://ghcr.io\n"
        "    username: bot\n"
        "    password: s3cret\n"
        "    ttl_seconds: 60\n"
        "    visibility: private\n"
        "  - namespace: lan\n"
        "    url: https://10.0.0.5:5000\n"
        "    tls: insecure\n"
    )
    settings = load_settings(config)
    mirror, ghcr, lan = settings.proxies
    assert (mirror.namespace, mirror.tls_mode, mirror.ttl_seconds) == (None, "enabled", 300.0)
    assert mirror.visibility == "public"
    assert (ghcr.namespace, ghcr.username, ghcr.password) == ("ghcr", "bot", "s3cret")
    assert (ghcr.ttl_seconds, ghcr.visibility) == (60.0, "private")
    assert lan.tls_mode == "insecure"
    assert "s3cret" not in repr(settings)


def test_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_PROXIES", '[{"url": "http://127.0.0.1:5001", "ttl_seconds": 5}]')
    (proxy,) = load_settings().proxies
    assert (proxy.url, proxy.tls_mode, proxy.ttl_seconds) == (
        "http://127.0.0.1:5001",
        "disabled",
        5,
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"url": "http://a:1", "usernme": "x"}, "unknown setting 'proxies.0.usernme'"),
        ({"url": "ftp://a"}, "proxies.0.url"),
        ({"url": "https://a/v2/x"}, "without a path"),
        ({"url": "http://a:1", "tls": "enabled"}, "does not fit"),
        ({"url": "http://a:1", "username": "x"}, "both username and password"),
        ({"url": "http://a:1", "namespace": "Hub/"}, "not a repository name prefix"),
        ({"url": "http://a:1", "visibility": "secret"}, "proxies.0.visibility"),
    ],
)
def test_bad_proxies_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: dict[str, Any], problem: str
) -> None:
    monkeypatch.delenv("DOCKYARD_PROXIES", raising=False)
    config = tmp_path / "dockyard.yaml"
    config.write_text(json.dumps({"proxies": [entry]}))
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.").replace("(", r"\(")):
        load_settings(config)


def test_one_proxy_per_namespace() -> None:
    with pytest.raises(ValueError, match="two proxies are configured for every namespace"):
        Settings(proxies=[ProxyUpstream(url="http://a:1"), ProxyUpstream(url="http://b:1")])
