"""The transport against small registries in process: auth challenges and tokens, retries and
backoff, limits, and error answers raised as the spec's classes."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dockyard.client.hosts import Client
from dockyard.client.settings import Credential
from dockyard.oci.errors import (
    DigestInvalid,
    ManifestUnknown,
    OciError,
    TooManyRequests,
    Unauthorized,
)

PATH = "/v2/team/app/manifests/v1"
PULL = frozenset({"repository:team/app:pull"})
PUSH = frozenset({"repository:team/app:pull,push"})
REALM = "http://auth.test/token"

ClientFor = Callable[..., Client]


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]})
    return Response(body, status, headers, media_type="application/json")


class TokenRegistry:
    """A registry that wants `Bearer <token>` for a scope set, and the token service for it."""

    def __init__(self, *, users: dict[str, str] | None = None, expires_in: int = 300) -> None:
        self.users = users or {}
        self.expires_in = expires_in
        self.token_requests: list[Request] = []
        self.token_scopes: list[list[str]] = []
        self.registry_requests = 0
        self.required = "repository:team/app:pull"
        self.app = Starlette(
            routes=[
                Route("/token", self.token, methods=["GET", "POST"]),
                Route("/v2/{path:path}", self.registry, methods=["GET", "PUT", "HEAD"]),
            ]
        )

    async def token(self, request: Request) -> Response:
        self.token_requests.append(request)
        if request.method == "POST":
            form = urllib.parse.parse_qs((await request.body()).decode())
            scopes = " ".join(form.get("scope", [])).split()
            if form.get("refresh_token") != ["refresh-me"]:
                return _error(401, "UNAUTHORIZED", "bad refresh token")
        else:
            scopes = request.query_params.getlist("scope")
            header = request.headers.get("authorization")
            if header is not None:
                user, _, password = base64.b64decode(header.split()[1]).decode().partition(":")
                if self.users.get(user) != password:
                    return _error(401, "UNAUTHORIZED", "invalid username or password")
        self.token_scopes.append(sorted(scopes))
        token = "t:" + " ".join(sorted(scopes))
        return JSONResponse({"token": token, "expires_in": self.expires_in})

    async def registry(self, request: Request) -> Response:
        self.registry_requests += 1
        granted = request.headers.get("authorization", "").removeprefix("Bearer t:").split()
        if self.required not in granted and not self._covered(granted):
            challenge = f'Bearer realm="{REALM}",service="test",scope="{self.required}"'
            return _error(
                401, "UNAUTHORIZED", "authentication required", **{"WWW-Authenticate": challenge}
            )
        return Response(b"{}", 200, media_type="application/json")

    def _covered(self, granted: list[str]) -> bool:
        kind, _, actions = self.required.rpartition(":")
        wanted = set(actions.split(","))
        return any(
            g.rpartition(":")[0] == kind and wanted <= set(g.rpartition(":")[2].split(","))
            for g in granted
        )


async def test_anonymous_token_is_fetched_once_and_reused(client_for: ClientFor) -> None:
    fake = TokenRegistry()
    transport = client_for(fake.app).transport("registry.test")
    for _ in range(3):
        async with transport.request("GET", PATH, scopes=PULL) as response:
            assert response.status == 200
    assert len(fake.token_requests) == 1
    assert "authorization" not in fake.token_requests[0].headers
    assert fake.token_requests[0].query_params["service"] == "test"
    # one 401 to learn the challenge, then three authorized requests
    assert fake.registry_requests == 4


async def test_a_push_token_serves_pull_requests(client_for: ClientFor) -> None:
    fake = TokenRegistry()
    transport = client_for(fake.app).transport("registry.test")
    async with transport.request("GET", PATH, scopes=PUSH):
        pass
    async with transport.request("GET", PATH, scopes=PULL):
        pass
    assert fake.token_scopes == [["repository:team/app:pull,push"]]


async def test_challenge_widens_the_scopes_asked_for(client_for: ClientFor) -> None:
    fake = TokenRegistry()
    fake.required = "repository:team/base:pull"  # e.g. a mount that also reads another repo
    transport = client_for(fake.app).transport("registry.test")
    async with transport.request("GET", PATH, scopes=PUSH) as response:
        assert response.status == 200
    assert fake.token_scopes[-1] == ["repository:team/app:pull,push", "repository:team/base:pull"]


async def test_expired_token_is_fetched_again(client_for: ClientFor, fake_time: Any) -> None:
    fake = TokenRegistry(expires_in=60)
    transport = client_for(fake.app).transport("registry.test")
    async with transport.request("GET", PATH, scopes=PULL):
        pass
    fake_time.now += 30
    async with transport.request("GET", PATH, scopes=PULL):
        pass
    assert len(fake.token_requests) == 1
    fake_time.now += 30  # within the renewal margin of 60 s
    async with transport.request("GET", PATH, scopes=PULL):
        pass
    assert len(fake.token_requests) == 2


async def test_credentials_go_to_the_token_service(client_for: ClientFor) -> None:
    fake = TokenRegistry(users={"alice": "s3cret"})
    credential = Credential(username="alice", password="s3cret")
    transport = client_for(fake.app, credential=credential).transport("registry.test")
    async with transport.request("GET", PATH, scopes=PULL):
        pass
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert fake.token_requests[0].headers["authorization"] == expected


async def test_refused_credentials_raise_unauthorized_naming_the_token_service(
    client_for: ClientFor,
) -> None:
    fake = TokenRegistry(users={"alice": "s3cret"})
    credential = Credential(username="alice", password="wrong")
    transport = client_for(fake.app, credential=credential).transport("registry.test")
    with pytest.raises(Unauthorized, match=r"invalid username or password.*token service"):
        async with transport.request("GET", PATH, scopes=PULL):
            pass
    assert len(fake.token_requests) == 1  # a 401 is not retried


async def test_identity_token_uses_the_oauth2_refresh_form(client_for: ClientFor) -> None:
    fake = TokenRegistry()
    credential = Credential(username="alice", identity_token="refresh-me")
    transport = client_for(fake.app, credential=credential).transport("registry.test")
    async with transport.request("GET", PATH, scopes=PULL) as response:
        assert response.status == 200
    assert fake.token_requests[0].method == "POST"


async def test_a_token_without_the_scope_stops_after_bounded_rounds(client_for: ClientFor) -> None:
    fake = TokenRegistry()
    fake.required = "repository:team/app:delete"
    fake._covered = lambda granted: False  # type: ignore[method-assign]  # never granted
    transport = client_for(fake.app).transport("registry.test")
    with pytest.raises(Unauthorized):
        async with transport.request("GET", PATH, scopes=PULL):
            pass
    assert fake.registry_requests <= 3


def _basic_app(user: str, password: str, seen: list[str | None]) -> Starlette:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def handler(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != expected:
            return _error(401, "UNAUTHORIZED", "login", **{"WWW-Authenticate": 'Basic realm="r"'})
        return Response(b"{}", 200)

    return Starlette(routes=[Route("/v2/{path:path}", handler)])


async def test_basic_challenge_sends_credentials(client_for: ClientFor) -> None:
    seen: list[str | None] = []
    app = _basic_app("bob", "pw", seen)
    transport = client_for(app, credential=Credential(username="bob", password="pw")).transport(
        "registry.test"
    )
    for _ in range(2):
        async with transport.request("GET", PATH) as response:
            assert response.status == 200
    assert seen[0] is None
    expected = "Basic " + base64.b64encode(b"bob:pw").decode()
    assert seen[1:] == [expected, expected]


async def test_basic_with_wrong_password_raises_after_one_try(client_for: ClientFor) -> None:
    seen: list[str | None] = []
    app = _basic_app("bob", "pw", seen)
    transport = client_for(app, credential=Credential(username="bob", password="nope")).transport(
        "registry.test"
    )
    with pytest.raises(Unauthorized, match="login"):
        async with transport.request("GET", PATH):
            pass
    assert len(seen) == 2


class Flaky:
    """Answers from a script of responses, then 200; records each request's body."""

    def __init__(self, *script: Response) -> None:
        self.script = list(script)
        self.bodies: list[bytes] = []
        self.app = Starlette(routes=[Route("/v2/{path:path}", self.handle, methods=["GET", "PUT"])])

    async def handle(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        if self.script:
            return self.script.pop(0)
        return Response(b"ok", 200)


async def test_5xx_is_retried_with_jittered_backoff(client_for: ClientFor, fake_time: Any) -> None:
    flaky = Flaky(Response(b"boom", 500), Response(b"busy", 503))
    transport = client_for(flaky.app).transport("registry.test")
    async with transport.request("GET", PATH) as response:
        assert await response.read() == b"ok"
    assert len(flaky.bodies) == 3
    # full jitter with rand() == 1.0: base·2⁰, base·2¹
    assert fake_time.sleeps == [0.5, 1.0]


async def test_429_waits_what_retry_after_asks(client_for: ClientFor, fake_time: Any) -> None:
    flaky = Flaky(_error(429, "TOOMANYREQUESTS", "slow down", **{"Retry-After": "3"}))
    transport = client_for(flaky.app).transport("registry.test")
    async with transport.request("GET", PATH) as response:
        assert response.status == 200
    assert fake_time.sleeps == [3.0]


async def test_retry_after_as_http_date_is_honoured(client_for: ClientFor, fake_time: Any) -> None:
    flaky = Flaky(Response(b"", 503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    transport = client_for(flaky.app).transport("registry.test")
    async with transport.request("GET", PATH) as response:
        assert response.status == 200
    assert fake_time.sleeps == [0.0] or fake_time.sleeps == []  # a date in the past: no wait


async def test_an_unreadable_retry_after_means_the_backoff(
    client_for: ClientFor, fake_time: Any
) -> None:
    answers = [Response(b"", 503), Response(b"", 503), Response(b"", 501)]
    # "²" passes str.isdigit but is no number; "١٢" (Arabic-Indic 12) is no delay-seconds
    for answer, value in zip(answers, ["²", "١٢", "1"], strict=True):
        answer.raw_headers.append((b"retry-after", value.encode()))
    flaky = Flaky(*answers)
    transport = client_for(flaky.app).transport("registry.test")
    with pytest.raises(OciError) as raised:
        async with transport.request("GET", PATH):
            pass
    assert raised.value.status == 501, "not retryable: it answers the same way every time"
    assert fake_time.sleeps == [0.5, 1.0]  # the jittered backoff, as if no Retry-After


async def test_retries_are_bounded_and_the_last_answer_raised(client_for: ClientFor) -> None:
    flaky = Flaky(*[_error(429, "TOOMANYREQUESTS", "slow down") for _ in range(10)])
    transport = client_for(flaky.app, attempts=3).transport("registry.test")
    with pytest.raises(TooManyRequests, match="slow down"):
        async with transport.request("GET", PATH):
            pass
    assert len(flaky.bodies) == 3


async def test_client_errors_are_not_retried(client_for: ClientFor) -> None:
    flaky = Flaky(_error(400, "DIGEST_INVALID", "bad digest"))
    transport = client_for(flaky.app).transport("registry.test")
    with pytest.raises(DigestInvalid, match="bad digest") as raised:
        async with transport.request("PUT", PATH, body=b"x"):
            pass
    assert raised.value.status == 400
    assert len(flaky.bodies) == 1


async def test_a_one_shot_stream_is_sent_once(client_for: ClientFor) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b"abc"

    flaky = Flaky(Response(b"boom", 500))
    transport = client_for(flaky.app).transport("registry.test")
    with pytest.raises(OciError) as raised:
        async with transport.request("PUT", PATH, body=stream(), headers={"Content-Length": "3"}):
            pass
    assert raised.value.status == 500
    assert flaky.bodies == [b"abc"]


async def test_a_reopenable_body_is_sent_again(client_for: ClientFor) -> None:
    opened = 0

    def body() -> AsyncIterator[bytes]:
        nonlocal opened
        opened += 1

        async def stream() -> AsyncIterator[bytes]:
            yield b"abc"
            yield b"def"

        return stream()

    flaky = Flaky(Response(b"boom", 502))
    transport = client_for(flaky.app).transport("registry.test")
    length = {"Content-Length": "6"}  # the in-process connector does not undo chunked framing
    async with transport.request("PUT", PATH, body=body, headers=length) as response:
        assert response.status == 200
    assert opened == 2
    assert flaky.bodies == [b"abcdef", b"abcdef"]


async def test_a_failing_body_source_raises_its_error_without_retry(
    client_for: ClientFor,
) -> None:
    opened = 0

    def body() -> AsyncIterator[bytes]:
        nonlocal opened
        opened += 1

        async def stream() -> AsyncIterator[bytes]:
            yield b"abc"
            raise DigestInvalid("source blob is corrupt")

        return stream()

    flaky = Flaky()
    transport = client_for(flaky.app).transport("registry.test")
    with pytest.raises(DigestInvalid, match="source blob is corrupt"):
        async with transport.request("PUT", PATH, body=body, headers={"Content-Length": "6"}):
            pass
    assert opened == 1


async def test_concurrent_requests_are_capped(client_for: ClientFor) -> None:
    running = peak = 0

    async def handler(request: Request) -> Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return Response(b"", 200)

    app = Starlette(routes=[Route("/v2/{path:path}", handler)])
    transport = client_for(app, req_concurrent=2).transport("registry.test")

    async def one() -> None:
        async with transport.request("GET", PATH):
            pass

    await asyncio.gather(*(one() for _ in range(6)))
    assert peak == 2


async def test_every_request_gives_its_slot_back(client_for: ClientFor, fake_time: Any) -> None:
    flaky = Flaky(
        _error(404, "MANIFEST_UNKNOWN", "no such manifest"),  # an error answer
        Response(b"boom", 500),  # retried: the failed attempt's slot is given back first
    )
    transport = client_for(flaky.app, req_concurrent=1).transport("registry.test")
    with pytest.raises(ManifestUnknown):
        async with transport.request("GET", PATH):
            pass
    with pytest.raises(RuntimeError, match="the caller's own"):
        async with transport.request("GET", PATH):
            raise RuntimeError("the caller's own failure")  # the block's, after a retry
    async with asyncio.timeout(5), transport.request("GET", PATH) as response:
        assert await response.read() == b"ok"  # one slot, still free


async def test_requests_per_second_are_spaced(client_for: ClientFor, fake_time: Any) -> None:
    flaky = Flaky()
    transport = client_for(flaky.app, req_per_sec=4).transport("registry.test")
    for _ in range(3):
        async with transport.request("GET", PATH):
            pass
    assert fake_time.sleeps == [0.25, 0.25]


async def test_error_bodies_become_spec_classes_with_status(client_for: ClientFor) -> None:
    flaky = Flaky(
        _error(404, "MANIFEST_UNKNOWN", "no such manifest"),
        Response(b"404 page not found", 404, media_type="text/plain"),
    )
    transport = client_for(flaky.app).transport("registry.test")
    with pytest.raises(ManifestUnknown, match=r"no such manifest \(GET http://registry.test/"):
        async with transport.request("GET", PATH):
            pass
    with pytest.raises(OciError, match="HTTP 404: 404 page not found") as raised:
        async with transport.request("GET", PATH):
            pass
    assert (raised.value.code, raised.value.status) == ("UNKNOWN", 404)
