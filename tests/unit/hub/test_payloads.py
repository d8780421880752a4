"""Docker Hub's webhook payload, field by field and type by type, plus Dockyard's additions."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

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
    sent = payloads.headers(event(), "uuid-1", "s3cret", body)
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sent == {
        "Content-Type": "application/json",
        "User-Agent": "Dockyard-Webhooks/1",
        "X-Dockyard-Event": "push",
        "X-Dockyard-Delivery": "uuid-1",
        "X-Dockyard-Digest": NEW,
        "X-Dockyard-Previous-Digest": OLD,
        "X-Dockyard-Signature-256": expected,
    }
    unsigned = payloads.headers(event(old=None), "uuid-2", None, body)
    assert "X-Dockyard-Signature-256" not in unsigned
    assert "X-Dockyard-Previous-Digest" not in unsigned
