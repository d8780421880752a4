"""Docker Hub's webhook payload, field by field and type by type, plus Dockyard's additions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import standardwebhooks

from dockyard.hub import payloads
from dockyard.metadata.events import EventRow
from dockyard.metadata.webhooks import RepositoryFacts

NEW = "sha256:" + "b" * 64
OLD = "sha256:" + "a" * 64
INDEX = "application/vnd.oci.image.index.v1+json"


def event(old: str | None = OLD) -> EventRow:
    return EventRow(
        id=7,
        kind="push",
        repository_id=3,
        repository="exampleorg/dhi-python",
        tag="3.13-alpine3.21",
        old_digest=old,
        new_digest=NEW,
        media_type=INDEX,
        pusher="trustedbuilder",
        created_at=1712345678.9,
    )


FACTS = RepositoryFacts(3, "exampleorg/dhi-python", "private", 1417494799.5)


def test_every_docker_hub_field_with_its_type() -> None:
    payload = payloads.push_payload(
        event(),
        FACTS,
        public_url="https://hub.example.com/",
        callback="https://hub.example.com/api/webhooks/callback/tok",
    )
    assert payload == {
        "callback_url": "https://hub.example.com/api/webhooks/callback/tok",
        "push_data": {
            "pushed_at": 1712345678,
            "pusher": "trustedbuilder",
            "tag": "3.13-alpine3.21",
            "images": [NEW],
            "media_type": INDEX,
            "digest": NEW,
            "previous_digest": OLD,
        },
        "repository": {
            "comment_count": 0,
            "date_created": 1417494799,
            "description": "",
            "dockerfile": "",
            "full_description": "",
            "is_official": False,
            "is_private": True,
            "is_trusted": False,
            "name": "dhi-python",
            "namespace": "exampleorg",
            "owner": "exampleorg",
            "repo_name": "exampleorg/dhi-python",
            "repo_url": "https://hub.example.com/r/exampleorg/dhi-python",
            "star_count": 0,
            "status": "Active",
        },
    }
    # Unix seconds are JSON integers, as Docker Hub sends them
    text = payloads.encode(payload)
    assert '"pushed_at":1712345678,' in text
    assert '"date_created":1417494799,' in text
    assert json.loads(text) == payload


def test_a_new_tag_has_no_previous_digest_and_public_repositories_are_not_private() -> None:
    facts = RepositoryFacts(3, "exampleorg/dhi-python", "public", 1.0)
    payload = payloads.push_payload(event(old=None), facts, public_url="http://h", callback="c")
    assert payload["push_data"]["previous_digest"] is None
    assert payload["repository"]["is_private"] is False


@pytest.mark.parametrize(
    ("repository", "namespace", "name"),
    [
        ("exampleorg/dhi-python", "exampleorg", "dhi-python"),
        ("org/team/app", "org", "team/app"),
        ("alpine", "", "alpine"),
    ],
)
def test_namespace_is_the_first_segment(repository: str, namespace: str, name: str) -> None:
    assert payloads.split_repository(repository) == (namespace, name)


def test_callback_url_carries_the_token() -> None:
    assert (
        payloads.callback_url("https://hub.example.com/", "abc")
        == "https://hub.example.com/api/v1/callbacks/abc"
    )


def test_headers_name_the_event_delivery_and_digests_and_sign_the_body() -> None:
    body = b'{"x":1}'
    sent = payloads.headers(event(), "uuid-1", "s3cret", body, 1712345679)
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    standard = hmac.new(b"s3cret", b'uuid-1.1712345679.{"x":1}', hashlib.sha256).digest()
    assert sent == {
        "Content-Type": "application/json",
        "User-Agent": "Dockyard-Webhooks/1",
        "X-Dockyard-Event": "push",
        "X-Dockyard-Delivery": "uuid-1",
        "X-Dockyard-Digest": NEW,
        "X-Dockyard-Previous-Digest": OLD,
        "X-Dockyard-Signature-256": expected,
        "webhook-id": "uuid-1",
        "webhook-timestamp": "1712345679",
        "webhook-signature": "v1," + base64.b64encode(standard).decode(),
    }
    unsigned = payloads.headers(event(old=None), "uuid-2", None, body, 1712345679)
    assert "X-Dockyard-Signature-256" not in unsigned
    assert "webhook-signature" not in unsigned
    assert (unsigned["webhook-id"], unsigned["webhook-timestamp"]) == ("uuid-2", "1712345679")
    assert "X-Dockyard-Previous-Digest" not in unsigned


def test_the_standard_signature_matches_the_specifications_example() -> None:
    """The example in Standard Webhooks' reference libraries' tests, computed by this code."""
    key = payloads.standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = payloads.standard_signature(
        key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("secret", "verifier_secret"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("whsec_AAEC", "whsec_AAEC"),  # base64 without its padding
        ("s3cret", b"s3cret"),  # any other secret: its UTF-8 text is the key
        ("pässwort with spaces", "pässwort with spaces".encode()),
    ],
)
def test_signatures_verify_with_the_standard_webhooks_library(
    secret: str, verifier_secret: str | bytes
) -> None:
    body = '{"push_data":{"tag":"3.13"},"name":"Grüße"}'.encode()
    now = int(time.time())
    sent = payloads.headers(event(), "0b6a4c1e-uuid", secret, body, now)
    receiver = standardwebhooks.Webhook(verifier_secret)
    assert receiver.verify(body, sent) == json.loads(body)
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="No matching"):
        receiver.verify(body + b" ", sent)
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="No matching"):
        receiver.verify(body, {**sent, "webhook-id": "another-delivery"})
    old = payloads.headers(event(), "0b6a4c1e-uuid", secret, body, now - 600)
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
        receiver.verify(body, old)  # a request captured ten minutes ago and replayed


def test_only_a_whsec_secret_with_base64_after_it_is_read_as_a_standard_key() -> None:
    assert payloads.decode_standard_secret("whsec_AAEC") == b"\x00\x01\x02"
    assert payloads.decode_standard_secret("whsec_AAE=") == b"\x00\x01"
    for text in ("whsec_", "whsec_not base64!", "whsec_a-b_", "s3cret", "WHSEC_AAEC"):
        assert payloads.decode_standard_secret(text) is None
        assert payloads.standard_key(text) == text.encode()
