"""Deliveries signed as Standard Webhooks signs them, checked by a receiver on 127.0.0.1 that
verifies every request with the `standardwebhooks` library (a verifier Dockyard did not
write): the id stays for redeliveries, the timestamp is each attempt's, so a request replayed
later is refused; the old body-only signature is still sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import pytest
import standardwebhooks

from dockyard.hub.webhooks import InvalidWebhookRequest, Webhooks
from dockyard.metadata.db import Database
from support.webhooks import Received, Receiver, job, one_delivery, service


def verifying(receiver: Receiver, secret: str | bytes) -> None:
    """Make `receiver` answer as a careful receiver: 200 if the request verifies, else 401."""
    verifier = standardwebhooks.Webhook(secret)

    def check(request: Received) -> tuple[int, str]:
        try:
            verifier.verify(request.body, request.headers)
        except standardwebhooks.WebhookVerificationError as exc:
            return 401, str(exc)
        return 200, "verified"

    receiver.check = check


def standard_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.mark.parametrize(
    ("secret", "verifier_secret"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("s3cret made before", b"s3cret made before"),  # other secrets: their UTF-8 bytes
    ],
)
async def test_deliveries_verify_with_the_standard_webhooks_library(
    hooks: Webhooks, receiver: Receiver, secret: str, verifier_secret: str | bytes
) -> None:
    verifying(receiver, verifier_secret)
    pending = await one_delivery(hooks, receiver.url("/hook"), secret)
    await hooks.deliver(job(pending.id))
    done = await hooks.delivery(pending.id)
    assert (done.status, done.response_status, done.response_excerpt) == (
        "delivered",
        200,
        "verified",
    )
    [request] = receiver.requests
    assert request.headers["webhook-id"] == pending.event_uuid
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    legacy = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Dockyard-Signature-256"] == f"sha256={legacy}"


async def test_a_wrong_secret_does_not_verify(hooks: Webhooks, receiver: Receiver) -> None:
    verifying(receiver, standard_secret())
    pending = await one_delivery(hooks, receiver.url("/hook"), standard_secret())
    await hooks.deliver(job(pending.id))
    refused = await hooks.delivery(pending.id)
    assert (refused.status, refused.response_status) == ("failed", 401)
    assert refused.response_excerpt == "No matching signature found"


async def test_an_old_timestamp_is_refused_and_a_redelivery_keeps_its_id(
    db: Database, receiver: Receiver
) -> None:
    """An attempt signed ten minutes ago (as a captured request replayed now would be) is
    refused; a redelivery is signed with its own time and the same id, and verifies."""
    secret = standard_secret()
    verifying(receiver, secret)
    lag = [0.0]
    hooks = service(db, clock=lambda: time.time() - lag[0])
    pending = await one_delivery(hooks, receiver.url("/hook"), secret)
    lag[0] = 600.0
    await hooks.deliver(job(pending.id))
    stale = await hooks.delivery(pending.id)
    assert (stale.status, stale.response_excerpt) == ("failed", "Message timestamp too old")

    lag[0] = 0.0
    await hooks.redeliver(pending.id)
    await hooks.deliver(job(pending.id))
    assert (await hooks.delivery(pending.id)).status == "delivered"
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == pending.event_uuid
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) in (
        range(599, 602)
    )


async def test_unsigned_deliveries_still_carry_their_id_and_timestamp(
    hooks: Webhooks, receiver: Receiver
) -> None:
    pending = await one_delivery(hooks, receiver.url("/hook"))
    await hooks.deliver(job(pending.id))
    [request] = receiver.requests
    assert request.headers["webhook-id"] == pending.event_uuid
    assert request.headers["webhook-timestamp"].isdigit()
    assert "webhook-signature" not in request.headers


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_a-b_c"])
async def test_a_whsec_secret_must_hold_base64(db: Database, hooks: Webhooks, secret: str) -> None:
    with pytest.raises(InvalidWebhookRequest, match="Standard Webhooks format"):
        await one_delivery(hooks, "http://hooks.example.test/", secret)
