"""The services' refusals are answered in one place (`api/errors.py`), by class: each kind with
its status and code in the envelope, a kind's subclasses as that kind, and every kind the hub
defines has its own entry (none falls through to the catch-all)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import orjson
import pytest
from starlette.requests import Request

import dockyard.hub
from dockyard.api.errors import API_EXCEPTION_HANDLERS, REFUSALS, handle_refusal
from dockyard.auth.accounts import AccountConflict, AccountError, AccountNotFound
from dockyard.hub import errors as hub
from dockyard.hub.webhook_urls import WebhookUrlRefused
from dockyard.hub.webhooks import InvalidWebhookRequest


def _request(method: str = "POST") -> Request:
    return Request({"type": "http", "method": method, "path": "/api/v1/x", "headers": []})


async def _answer(exc: Exception, method: str = "POST") -> tuple[int, Any]:
    response = await handle_refusal(_request(method), exc)
    return response.status_code, orjson.loads(response.body) if response.body else None


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (hub.Invalid("kind must be one of image, chart"), 400, "INVALID_REQUEST"),
        (hub.NotFound("no mirror 7", {"id": 7}), 404, "NOT_FOUND"),
        (hub.Conflict("mirror 7 is stopped"), 409, "CONFLICT"),
        (hub.UpstreamFailed("docker.io answered 500"), 502, "UPSTREAM_FAILED"),
        (InvalidWebhookRequest("target_url must be http(s)"), 400, "INVALID_REQUEST"),
        (WebhookUrlRefused("127.0.0.1 is a loopback address"), 400, "INVALID_REQUEST"),
        (AccountError("names are one path component"), 422, "INVALID_REQUEST"),
        (AccountNotFound("no user named 'bob'"), 404, "NOT_FOUND"),
        (AccountConflict("'bob' is taken"), 409, "CONFLICT"),
    ],
)
async def test_each_kind_is_answered_with_its_status_and_code(
    exc: Exception, status: int, code: str
) -> None:
    expected: dict[str, Any] = {"code": code, "message": str(exc)}
    if getattr(exc, "detail", None) is not None:
        expected["detail"] = exc.detail  # type: ignore[attr-defined]
    assert await _answer(exc) == (status, {"errors": [expected]})


async def test_head_gets_the_status_without_a_body() -> None:
    assert await _answer(hub.NotFound("no such entry"), "HEAD") == (404, None)


async def test_a_subclass_is_answered_as_its_kind() -> None:
    class Gone(hub.NotFound):
        """A kind a later change might add under NotFound."""

    assert (await _answer(Gone("the entry was deleted")))[0] == 404


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_hub_kind_has_an_entry_and_a_handler() -> None:
    for module in pkgutil.walk_packages(dockyard.hub.__path__, "dockyard.hub."):
        importlib.import_module(module.name)
    for kind in _subclasses(hub.HubError):
        nearest = next(k for k in kind.__mro__ if k in REFUSALS)
        assert nearest is not hub.HubError, f"{kind.__qualname__} needs an entry in REFUSALS"
    assert API_EXCEPTION_HANDLERS[hub.HubError] is handle_refusal
    assert API_EXCEPTION_HANDLERS[AccountError] is handle_refusal
