"""Docker Hub's webhook payload for a tag pushed or moved, plus the digests Docker Hub omits.

Docker Hub sends `callback_url`, `push_data` (`pushed_at` as Unix seconds, `pusher`, `tag`,
`images`, `media_type`) and `repository` (every field below; `date_created` in Unix seconds).
Dockyard adds `push_data.digest` (what the tag points at now) and `push_data.previous_digest`
(what it pointed at before; null for a new tag). Fields Dockyard has no value for (stars,
comments, descriptions, Dockerfile) carry Docker Hub's empty values, so receivers written for
Docker Hub parse them unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

from dockyard.metadata.events import EventRow
from dockyard.metadata.webhooks import RepositoryFacts

USER_AGENT = "Dockyard-Webhooks/1"
SECRET_PREFIX = "whsec_"
"""Standard Webhooks' secret format: this prefix, then the key's bytes in base64."""
CALLBACK_PATH = "/api/v1/callbacks/"
"""Where receivers answer a delivery: `{public_url}{CALLBACK_PATH}{token}`."""


def split_repository(repository: str) -> tuple[str, str]:
    """(namespace, name): the first path segment and the rest ("" and the name if only one)."""
    namespace, _, name = repository.partition("/")
    return (namespace, name) if name else ("", namespace)


def repository_url(public_url: str, repository: str) -> str:
    """The repository's page, Docker Hub style: `{public_url}/r/{namespace}/{name}`."""
    return f"{public_url.rstrip('/')}/r/{repository}"


def callback_url(public_url: str, token: str) -> str:
    """Where the receiver of one delivery reports its outcome."""
    return f"{public_url.rstrip('/')}{CALLBACK_PATH}{token}"


def push_payload(
    event: EventRow, repository: RepositoryFacts, *, public_url: str, callback: str
) -> dict[str, Any]:
    """The payload announcing `event` (a tag pushed or moved) in `repository`."""
    namespace, name = split_repository(repository.name)
    return {
        "callback_url": callback,
        "push_data": {
            "pushed_at": int(event.created_at),
            "pusher": event.pusher,
            "tag": event.tag,
            "images": [event.new_digest],
            "media_type": event.media_type,
            "digest": event.new_digest,
            "previous_digest": event.old_digest,
        },
        "repository": {
            "comment_count": 0,
            "date_created": int(repository.created_at),
            "description": "",
            "dockerfile": "",
            "full_description": "",
            "is_official": False,
            "is_private": repository.visibility != "public",
            "is_trusted": False,
            "name": name,
            "namespace": namespace,
            "owner": namespace,
            "repo_name": repository.name,
            "repo_url": repository_url(public_url, repository.name),
            "star_count": 0,
            "status": "Active",
        },
    }


def encode(payload: dict[str, Any]) -> str:
    """The JSON text sent (and stored, so a redelivery sends the very same bytes)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sign(secret: str, body: bytes) -> str:
    """The X-Dockyard-Signature-256 value: `sha256=` and the hex HMAC-SHA256 of the body.

    Its key is the secret's text as UTF-8, whatever its form (as before signatures had ids).
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks signing key: what a `whsec_` secret's base64 encodes; for any
    other secret (such as every secret made before), its text as UTF-8."""
    decoded = decode_standard_secret(secret)
    return decoded if decoded is not None else secret.encode()


def new_standard_secret() -> str:
    """A fresh `whsec_` secret: 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def decode_standard_secret(secret: str) -> bytes | None:
    """The key a `whsec_<base64>` secret holds (padding optional); None for other secrets."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True) or None
    except binascii.Error:
        return None


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(
    event: EventRow | None, delivery_uuid: str, secret: str | None, body: bytes, timestamp: int
) -> dict[str, str]:
    """The request headers of one attempt: what Docker Hub lacks (event, id, digests,
    signatures), and Standard Webhooks' id and timestamp (`timestamp`: the attempt's).

    `webhook-signature` and `X-Dockyard-Signature-256` are sent only when the webhook has a
    secret.
    """
    sent = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Dockyard-Event": event.kind if event else "push",
        "X-Dockyard-Delivery": delivery_uuid,
        "webhook-id": delivery_uuid,
        "webhook-timestamp": str(timestamp),
    }
    if event is not None:
        sent["X-Dockyard-Digest"] = event.new_digest
        if event.old_digest:
            sent["X-Dockyard-Previous-Digest"] = event.old_digest
    if secret:
        sent["X-Dockyard-Signature-256"] = sign(secret, body)
        key = standard_key(secret)
        sent["webhook-signature"] = standard_signature(key, delivery_uuid, timestamp, body)
    return sent
