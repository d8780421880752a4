"""Webhooks end to end, on SQLite and PostgreSQL, against a real receiver on 127.0.0.1: the
outbox, dispatch, the payload and its signature, retries, refusals, redelivery, callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time

import pytest
from sqlalchemy import func, select

from dockyard.hub.jobs import Retry
from dockyard.hub.payloads import CALLBACK_PATH
from dockyard.hub.webhook_urls import WebhookUrlRefused
from dockyard.hub.webhooks import Webhooks
from dockyard.metadata import events, repositories
from dockyard.metadata.db import Database
from dockyard.metadata.tables import jobs, webhook_deliveries
from dockyard.metadata.webhooks import DeliveryRow
from support.inprocess import InProcess
from support.webhooks import (
    D1,
    D2,
    OCI_MANIFEST,
    PUBLIC_URL,
    Answers,
    Receiver,
    job,
    one_delivery,
    only_delivery,
    push_event,
    repository,
    service,
)

# --- the outbox -------------------------------------------------------------------------------


def image_manifest(config: tuple[str, int]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config[0],
                "size": config[1],
            },
            "layers": [],
        }
    ).encode()


async def test_the_outbox_gets_a_row_when_a_tag_is_pushed_or_moved_only(
    registry_app: InProcess,
) -> None:
    app = registry_app
    manifests = app.state.registry.manifests
    configs = [b'{"os":"linux","n":1}', b'{"os":"linux","n":2}']
    first, second = [image_manifest((await app.push_blob("acme/app", c), len(c))) for c in configs]
    pushed = await manifests.put("acme/app", "1.0", first, OCI_MANIFEST, pusher="alice")
    await manifests.put("acme/app", "1.0", first, OCI_MANIFEST, pusher="alice")  # same: no event
    moved = await manifests.put("acme/app", "1.0", second, OCI_MANIFEST, pusher="bob")
    await manifests.put("acme/app", f"{pushed.manifest.digest}", first, OCI_MANIFEST)  # no tag
    db = app.state.registry.store.db
    async with db.read() as conn:
        repo = await repositories.by_name(conn, "acme/app")
        assert repo is not None
        rows = list(reversed(await events.for_repository(conn, repo.id)))
    assert [(e.tag, e.old_digest, e.new_digest, e.pusher) for e in rows] == [
        ("1.0", None, str(pushed.manifest.digest), "alice"),
        ("1.0", str(pushed.manifest.digest), str(moved.manifest.digest), "bob"),
    ]
    assert all(e.media_type == OCI_MANIFEST and e.kind == "push" for e in rows)


async def test_old_dispatched_events_are_pruned_unless_a_delivery_needs_them(
    db: Database, hooks: Webhooks
) -> None:
    quiet, watched = await repository(db, "acme/quiet"), await repository(db)
    await hooks.create(watched, "ci", "http://hooks.example.test/")
    await push_event(db, quiet)
    await push_event(db, watched)
    assert await hooks.dispatch_events() == 2
    async with db.write() as conn:
        assert await events.prune(conn, time.time() - 60) == 0  # too recent
        assert await events.prune(conn, time.time() + 60) == 1  # the quiet one
        assert len(await events.for_repository(conn, watched)) == 1


async def test_a_webhook_hears_only_of_what_happens_after_it_was_made(
    db: Database, hooks: Webhooks
) -> None:
    repo = await repository(db)
    await push_event(db, repo)
    await asyncio.sleep(0.01)
    hook = await hooks.create(repo, "late", "http://hooks.example.test/")
    assert await hooks.dispatch_events() == 1
    assert await hooks.deliveries(hook.id) == []


# --- dispatch and delivery --------------------------------------------------------------------


async def test_a_push_is_delivered_with_the_full_payload_signed(
    db: Database, hooks: Webhooks, receiver: Receiver
) -> None:
    repo = await repository(db)
    hook = await hooks.create(repo, "ci", receiver.url("/hook"), "s3cret")
    await push_event(db, repo, "3.13", old=D2, new=D1)
    assert await hooks.dispatch_events() == 1
    assert await hooks.dispatch_events() == 0  # marked dispatched
    pending = await only_delivery(hooks, hook.id)
    assert (pending.status, pending.attempts) == ("pending", 0)
    claimed = await hooks.queue.claim("test", ["webhook.deliver"])
    assert claimed is not None
    assert claimed.payload == {"delivery_id": pending.id}
    assert claimed.max_attempts == 3

    await hooks.deliver(claimed)

    [request] = receiver.requests
    assert request.body == pending.payload.encode()
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Dockyard-Webhooks/1"
    assert headers["X-Dockyard-Event"] == "push"
    assert headers["X-Dockyard-Delivery"] == pending.event_uuid
    assert headers["X-Dockyard-Digest"] == D1
    assert headers["X-Dockyard-Previous-Digest"] == D2
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert headers["X-Dockyard-Signature-256"] == f"sha256={expected}"
    payload = json.loads(request.body)
    assert payload["callback_url"].startswith(f"{PUBLIC_URL}{CALLBACK_PATH}")
    push_data = payload["push_data"]
    assert isinstance(push_data["pushed_at"], int)
    assert push_data | {"pushed_at": 0} == {
        "pushed_at": 0,
        "pusher": "alice",
        "tag": "3.13",
        "images": [D1],
        "media_type": OCI_MANIFEST,
        "digest": D1,
        "previous_digest": D2,
    }
    assert set(payload["repository"]) == {
        "comment_count", "date_created", "description", "dockerfile", "full_description",
        "is_official", "is_private", "is_trusted", "name", "namespace", "owner", "repo_name",
        "repo_url", "star_count", "status",
    }  # fmt: skip
    assert payload["repository"]["repo_name"] == "exampleorg/dhi-python"
    assert payload["repository"]["repo_url"] == f"{PUBLIC_URL}/r/exampleorg/dhi-python"
    assert payload["repository"]["is_private"] is True
    assert isinstance(payload["repository"]["date_created"], int)

    done = await hooks.delivery(pending.id)
    assert (done.status, done.attempts, done.response_status) == ("delivered", 1, 200)
    assert done.response_excerpt == "thanks"
    assert done.error is None
    assert done.delivered_at is not None
    assert done.duration_ms is not None
    assert done.duration_ms > 0


async def test_no_signature_without_a_secret(hooks: Webhooks, receiver: Receiver) -> None:
    pending = await one_delivery(hooks, receiver.url("/hook"))
    await hooks.deliver(job(pending.id))
    [request] = receiver.requests
    assert "X-Dockyard-Signature-256" not in request.headers
    assert "X-Dockyard-Previous-Digest" not in request.headers  # a new tag


async def test_only_active_webhooks_of_the_events_repository_get_deliveries(
    db: Database, hooks: Webhooks, receiver: Receiver
) -> None:
    repo, other = await repository(db), await repository(db, "exampleorg/other")
    active = await hooks.create(repo, "a", receiver.url("/a"))
    second = await hooks.create(repo, "b", receiver.url("/b"))
    inactive = await hooks.create(repo, "off", receiver.url("/off"), active=False)
    elsewhere = await hooks.create(other, "x", receiver.url("/x"))
    await push_event(db, repo, "1")
    await push_event(db, repo, "2")
    assert await hooks.dispatch_events() == 2
    assert len(await hooks.deliveries(active.id)) == 2
    assert len(await hooks.deliveries(second.id)) == 2
    assert await hooks.deliveries(inactive.id) == []
    assert await hooks.deliveries(elsewhere.id) == []
    async with db.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(jobs))).scalar()
    assert count == 4
    newest = await hooks.deliveries(active.id, newest_first=True, limit=1)
    oldest = await hooks.deliveries(active.id, limit=1)
    assert newest[0].id > oldest[0].id
    assert await hooks.deliveries(active.id, after_id=oldest[0].id) == newest


# --- answers and retries ----------------------------------------------------------------------


async def test_a_500_is_retried_then_delivered(hooks: Webhooks, receiver: Receiver) -> None:
    receiver.script["/hook"] = [(500, {}, "boom"), (200, {}, "ok")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    with pytest.raises(Retry) as retry:
        await hooks.deliver(job(pending.id, attempts=1))
    assert retry.value.delay is None  # the queue's backoff
    failed_once = await hooks.delivery(pending.id)
    assert failed_once.status == "pending"
    assert (failed_once.attempts, failed_once.response_status) == (1, 500)
    assert failed_once.response_excerpt == "boom"
    assert failed_once.error == "answered 500"
    await hooks.deliver(job(pending.id, attempts=2))
    done = await hooks.delivery(pending.id)
    assert (done.status, done.attempts, done.response_status) == ("delivered", 2, 200)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body


async def test_429_is_retried_after_what_retry_after_says(
    hooks: Webhooks, receiver: Receiver
) -> None:
    receiver.script["/hook"] = [(429, {"Retry-After": "7"}, "slow down")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    with pytest.raises(Retry) as retry:
        await hooks.deliver(job(pending.id))
    assert retry.value.delay == 7
    assert (await hooks.delivery(pending.id)).response_status == 429


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (425, "3", 3.0),  # too early: retryable like everywhere else in Dockyard
        (503, "²", None),  # an unreadable Retry-After means the queue's backoff, not a crash
        (503, "Tue Nov 14 22:13:50 2023", 0.0),  # a date in the past: now
    ],
)
async def test_retryable_answers_follow_the_shared_rule(
    hooks: Webhooks, receiver: Receiver, status: int, retry_after: str, delay: float | None
) -> None:
    receiver.script["/hook"] = [(status, {"Retry-After": retry_after}, "later")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    with pytest.raises(Retry) as retry:
        await hooks.deliver(job(pending.id))
    assert retry.value.delay == delay
    row = await hooks.delivery(pending.id)
    assert (row.status, row.response_status) == ("pending", status)


async def test_a_501_fails_at_once(hooks: Webhooks, receiver: Receiver) -> None:
    receiver.script["/hook"] = [(501, {}, "no POST here")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    await hooks.deliver(job(pending.id, attempts=1))  # no Retry: it answers the same way again
    failed = await hooks.delivery(pending.id)
    assert (failed.status, failed.response_status) == ("failed", 501)


async def test_the_last_attempt_fails_the_delivery(hooks: Webhooks, receiver: Receiver) -> None:
    receiver.script["/hook"] = [(503, {}, "down")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    await hooks.deliver(job(pending.id, attempts=3, max_attempts=3))  # no Retry
    failed = await hooks.delivery(pending.id)
    assert (failed.status, failed.response_status) == ("failed", 503)


async def test_a_404_fails_at_once(hooks: Webhooks, receiver: Receiver) -> None:
    receiver.script["/hook"] = [(404, {}, "no such hook " * 200)]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    await hooks.deliver(job(pending.id, attempts=1))  # no Retry
    failed = await hooks.delivery(pending.id)
    assert (failed.status, failed.attempts, failed.response_status) == ("failed", 1, 404)
    assert failed.response_excerpt is not None
    assert len(failed.response_excerpt) == 1024  # the first KiB


async def test_a_timeout_is_retried(db: Database, receiver: Receiver) -> None:
    hooks = service(db, timeout=0.3)
    pending = await one_delivery(hooks, receiver.url("/slow"))
    with pytest.raises(Retry, match=r"no response within 0\.3 s"):
        await hooks.deliver(job(pending.id))
    row = await hooks.delivery(pending.id)
    assert (row.status, row.response_status) == ("pending", None)
    assert row.duration_ms is not None
    assert 250 < row.duration_ms < 2000


async def test_connection_refused_is_retried(hooks: Webhooks) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pending = await one_delivery(hooks, f"http://127.0.0.1:{port}/hook")
    with pytest.raises(Retry):
        await hooks.deliver(job(pending.id))
    row = await hooks.delivery(pending.id)
    assert row.status == "pending"
    assert row.error is not None


async def test_redirects_are_not_followed(hooks: Webhooks, receiver: Receiver) -> None:
    receiver.script["/hook"] = [(302, {"Location": receiver.url("/elsewhere")}, "")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    await hooks.deliver(job(pending.id))  # no Retry
    assert [r.path for r in receiver.requests] == ["/hook"]
    failed = await hooks.delivery(pending.id)
    assert (failed.status, failed.response_status) == ("failed", 302)
    assert failed.error is not None
    assert "redirect" in failed.error


# --- URL refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/",
        "http://127.0.0.1:9000/hook",
        "http://10.0.0.8/hook",
        "http://localhost:9000/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
    ],
)
async def test_forbidden_urls_are_refused_when_saved(db: Database, url: str) -> None:
    hooks = service(db, allow_private=False)
    repo = await repository(db)
    with pytest.raises(WebhookUrlRefused):
        await hooks.create(repo, "ci", url)
    created = await hooks.create(repo, "ci", "https://ci.example.com/hooks/dhi-sync")
    with pytest.raises(ValueError, match="webhook URL"):
        await hooks.update(repo, created.id, url=url)


async def test_a_name_re_pointed_after_saving_is_refused_at_delivery(
    db: Database, receiver: Receiver
) -> None:
    dns = Answers({"hooks.example.com": ["93.184.216.34"]})
    hooks = service(db, allow_private=False, resolve=dns.lookup, resolver=dns.resolver)
    pending = await one_delivery(hooks, "http://hooks.example.com/hook")
    dns.table["hooks.example.com"] = ["169.254.169.254"]  # DNS rebinding
    await hooks.deliver(job(pending.id))  # no Retry: it would only be refused again
    failed = await hooks.delivery(pending.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "metadata" in failed.error
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("address", "allow_private", "says"),
    [
        ("::169.254.169.254", True, "embeds 169.254.169.254, a cloud metadata"),
        ("::ffff:0:a9fe:a9fe", True, "embeds 169.254.169.254, a cloud metadata"),
        ("64:ff9b:1::a9fe:a9fe", True, "embeds 169.254.169.254, a cloud metadata"),
        ("::127.0.0.1", False, "embeds 127.0.0.1, a loopback address"),
        ("2002:7f00:1::", False, "embeds 127.0.0.1, a loopback address"),
    ],
)
async def test_a_name_re_pointed_to_an_ipv6_form_of_a_forbidden_ipv4_is_refused_at_delivery(
    db: Database, address: str, allow_private: bool, says: str
) -> None:
    """The connection's own lookup judges the IPv4 address an IPv6 answer embeds."""
    dns = Answers({"hooks.example.com": ["93.184.216.34"]})
    hooks = service(db, allow_private=allow_private, resolve=dns.lookup, resolver=dns.resolver)
    pending = await one_delivery(hooks, "http://hooks.example.com/hook")
    dns.table["hooks.example.com"] = [address]
    await hooks.deliver(job(pending.id))  # no Retry
    failed = await hooks.delivery(pending.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("webhook URL refused: hooks.example.com resolves to ")
    assert says in failed.error


async def test_a_delivery_looks_its_host_name_up_once(db: Database, receiver: Receiver) -> None:
    """The lookup that is checked is the one connected to: no second lookup before it."""
    dns = Answers({"hooks.example.test": ["127.0.0.1"]})
    hooks = service(db, resolve=dns.lookup, resolver=dns.resolver)
    port = receiver.base.rsplit(":", 1)[1]
    pending = await one_delivery(hooks, f"http://hooks.example.test:{port}/hook")
    assert dns.asked == 1  # the check when it was saved
    await hooks.deliver(job(pending.id))
    assert dns.asked == 2
    assert (await hooks.delivery(pending.id)).status == "delivered"
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_the_connection_itself_goes_only_where_a_webhook_may_reach(
    db: Database, receiver: Receiver
) -> None:
    """Even when the check at saving was fooled (a name answering differently to the next
    lookup), the lookup the connection makes refuses the forbidden address."""

    async def fooled(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    hooks = service(db, allow_private=False, resolve=fooled)
    port = receiver.base.rsplit(":", 1)[1]
    pending = await one_delivery(hooks, f"http://localhost:{port}/hook")
    await hooks.deliver(job(pending.id))
    failed = await hooks.delivery(pending.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "localhost resolves to" in failed.error
    assert receiver.requests == []


async def test_loopback_deliveries_are_refused_when_private_is_not_allowed(
    db: Database, receiver: Receiver
) -> None:
    pending = await one_delivery(service(db), receiver.url("/hook"))  # saved while allowed
    strict = service(db, allow_private=False)
    await strict.deliver(job(pending.id))
    failed = await strict.delivery(pending.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "webhook_allow_private" in failed.error
    assert receiver.requests == []


# --- redelivery, callbacks, settings ------------------------------------------------------------


async def test_redelivery_sends_the_same_payload_through_a_new_job(
    hooks: Webhooks, receiver: Receiver
) -> None:
    receiver.script["/hook"] = [(404, {}, "gone"), (200, {}, "back")]
    pending = await one_delivery(hooks, receiver.url("/hook"))
    first_job = await hooks.queue.claim("test", ["webhook.deliver"])
    assert first_job is not None
    await hooks.deliver(first_job)
    await hooks.queue.succeed(first_job.id, "test")
    assert (await hooks.delivery(pending.id)).status == "failed"

    job_id = await hooks.redeliver(pending.id, webhook_id=pending.webhook_id)
    assert job_id != first_job.id
    assert (await hooks.delivery(pending.id)).status == "pending"
    second_job = await hooks.queue.claim("test", ["webhook.deliver"])
    assert second_job is not None
    assert second_job.id == job_id
    await hooks.deliver(second_job)
    done = await hooks.delivery(pending.id)
    assert (done.status, done.attempts, done.response_excerpt) == ("delivered", 2, "back")
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["X-Dockyard-Delivery"] == second.headers["X-Dockyard-Delivery"]
    with pytest.raises(LookupError):
        await hooks.redeliver(pending.id, webhook_id=pending.webhook_id + 1)
    with pytest.raises(LookupError):
        await hooks.redeliver(10_000)


def token_of(delivery: DeliveryRow) -> str:
    url: str = json.loads(delivery.payload)["callback_url"]
    return url.rsplit("/", 1)[1]


async def test_callbacks_record_the_receivers_state(db: Database, hooks: Webhooks) -> None:
    pending = await one_delivery(hooks, "http://127.0.0.1:9/hook")
    token = token_of(pending)
    async with db.read() as conn:
        stored = (await conn.execute(select(webhook_deliveries.c.callback_token_hash))).scalar()
    assert stored == hashlib.sha256(token.encode()).hexdigest()  # only the hash is kept
    assert token not in str(stored)

    row = await hooks.record_callback(
        token,
        "success",
        "387 tests PASSED",
        "Continuous integration by Acme CI",
        "https://ci.acme.com/results/afd339c1c3d27",
    )
    assert (row.callback_state, row.callback_description) == ("success", "387 tests PASSED")
    assert row.callback_context == "Continuous integration by Acme CI"
    assert row.callback_target_url == "https://ci.acme.com/results/afd339c1c3d27"
    assert row.callback_at is not None
    for state in ("failure", "error"):
        assert (await hooks.record_callback(token, state)).callback_state == state
    with pytest.raises(ValueError, match="state must be"):
        await hooks.record_callback(token, "done")
    with pytest.raises(ValueError, match="description"):
        await hooks.record_callback(token, "success", "x" * 256)
    with pytest.raises(ValueError, match="target_url"):
        await hooks.record_callback(token, "success", target_url="javascript:alert(1)")
    with pytest.raises(LookupError):
        await hooks.record_callback("not-a-token", "success")


async def test_webhooks_are_kept_per_repository(db: Database, hooks: Webhooks) -> None:
    repo, other = await repository(db), await repository(db, "exampleorg/other")
    hook = await hooks.create(repo, "ci", "https://ci.example.com/a", "s1")
    assert hook.has_secret
    assert hook.active
    with pytest.raises(ValueError, match="already has a webhook named 'ci'"):
        await hooks.create(repo, "ci", "https://ci.example.com/b")
    await hooks.create(other, "ci", "https://ci.example.com/b")  # another repository: fine
    with pytest.raises(LookupError):
        await hooks.get(other, hook.id)
    with pytest.raises(LookupError):
        await hooks.delete(other, hook.id)
    second = await hooks.create(repo, "audit", "https://audit.example.com/")
    with pytest.raises(ValueError, match="already has"):
        await hooks.update(repo, second.id, name="ci")
    updated = await hooks.update(
        repo, hook.id, name="ci-2", url="https://ci.example.com/c", secret="", active=False
    )
    assert (updated.name, updated.url, updated.secret, updated.active) == (
        "ci-2",
        "https://ci.example.com/c",
        None,
        False,
    )
    assert [h.name for h in await hooks.for_repository(repo)] == ["audit", "ci-2"]
    await push_event(db, repo)
    await hooks.dispatch_events()
    assert len(await hooks.deliveries(second.id)) == 1
    await hooks.delete(repo, second.id)
    assert await hooks.deliveries(second.id) == []  # history goes with it
    assert [h.name for h in await hooks.for_repository(repo)] == ["ci-2"]


async def test_a_disabled_webhook_is_not_delivered_or_redelivered(
    hooks: Webhooks, receiver: Receiver
) -> None:
    pending = await one_delivery(hooks, receiver.url("/hook"))
    hook = await hooks.update(await repository_id(hooks), pending.webhook_id, active=False)
    assert not hook.active
    await hooks.deliver(job(pending.id))
    assert (await hooks.delivery(pending.id)).status == "failed"
    assert receiver.requests == []
    with pytest.raises(ValueError, match="disabled"):
        await hooks.redeliver(pending.id)


async def repository_id(hooks: Webhooks, name: str = "exampleorg/dhi-python") -> int:
    async with hooks.db.read() as conn:
        repo = await repositories.by_name(conn, name)
    assert repo is not None
    return repo.id


# --- several nodes ------------------------------------------------------------------------------


@pytest.mark.peers
async def test_two_dispatchers_on_postgresql_create_each_delivery_once(
    postgres_database_url: str,
) -> None:
    first, second = Database(postgres_database_url), Database(postgres_database_url)
    try:
        await first.migrate()
        repo = await repository(first)
        one, other = service(first), service(second)
        hook_ids = [
            (await one.create(repo, f"h{i}", f"https://h{i}.example.com/")).id for i in (1, 2)
        ]
        for n in range(40):
            await push_event(first, repo, f"t{n}")

        async def drain(hooks: Webhooks) -> int:
            total = 0
            while dispatched := await hooks.dispatch_events(limit=3):
                total += dispatched
            return total

        counts = await asyncio.gather(drain(one), drain(other), drain(one), drain(other))
        assert sum(counts) == 40
        async with first.read() as conn:
            pairs = (
                await conn.execute(
                    select(webhook_deliveries.c.webhook_id, webhook_deliveries.c.event_id)
                )
            ).all()
            queued = (await conn.execute(select(func.count()).select_from(jobs))).scalar()
        assert len(pairs) == 80
        assert len(set(pairs)) == 80
        assert {w for w, _ in pairs} == set(hook_ids)
        assert queued == 80
    finally:
        await first.close()
        await second.close()
