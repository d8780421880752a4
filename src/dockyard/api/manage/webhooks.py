"""/repositories/{name}/-/webhooks: a repository's webhooks and their deliveries (owners of
its namespace and site admins), and /callbacks/{token}, where receivers report back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.manage.access import Edge, SignedIn, check
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.repositories import REPOSITORY, RepositoryName
from dockyard.api.manage.schema import INT32_MAX, Label, errors, optional_timestamp, timestamp
from dockyard.auth.policy import Action, Subject, may_manage
from dockyard.metadata.repositories import RepositoryRow
from dockyard.metadata.webhooks import DeliveryRow, WebhookRow
from dockyard.oci.names import namespace_of

router = APIRouter(tags=["webhooks"], responses=errors(422))
Id = Annotated[int, Path(ge=1, le=INT32_MAX)]
Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://ci.example/hook"])]
WebhookSecret = Annotated[str, Field(max_length=1024)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Label
    url: Url
    secret: WebhookSecret | None = Field(
        None,
        description="signs each delivery: webhook-signature (Standard Webhooks; a whsec_ "
        "secret is its base64 key, any other its UTF-8 text) and X-Dockyard-Signature-256 "
        "(HMAC-SHA256 of the body with the secret's text)",
    )
    active: bool = True


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Label | None = None
    url: Url | None = None
    secret: WebhookSecret | None = Field(None, description='"" removes the secret')
    active: bool | None = None


class Webhook(BaseModel):
    id: int
    name: str
    url: str
    has_secret: bool
    active: bool
    created_at: datetime


class Delivery(BaseModel):
    id: int
    event_id: str = Field(description="the X-Dockyard-Delivery and webhook-id headers sent")
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    response_status: int | None
    response_excerpt: str | None = Field(description="the first KiB of the receiver's answer")
    error: str | None
    duration_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    callback_state: str | None = Field(description="success, failure or error, if reported")
    callback_description: str | None
    callback_context: str | None
    callback_target_url: str | None
    payload: str = Field(description="the JSON document sent, exactly")


class Redelivery(BaseModel):
    job_id: int


class Callback(BaseModel):
    """What Docker Hub's callback_url accepts."""

    model_config = ConfigDict(extra="forbid")
    state: Literal["success", "failure", "error"]
    description: Annotated[str, Field(max_length=255)] | None = None
    context: Annotated[str, Field(max_length=100)] | None = None
    target_url: Annotated[str, Field(max_length=2048)] | None = None


class CallbackRecorded(BaseModel):
    delivery_id: int
    state: str


def _webhook(row: WebhookRow) -> Webhook:
    return Webhook(
        id=row.id,
        name=row.name,
        url=row.url,
        has_secret=row.has_secret,
        active=row.active,
        created_at=timestamp(row.created_at),
    )


def _delivery(row: DeliveryRow) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_uuid,
        status=row.status.lower(),
        attempts=row.attempts,
        response_status=row.response_status,
        response_excerpt=row.response_excerpt,
        error=row.error,
        duration_ms=row.duration_ms,
        created_at=timestamp(row.created_at),
        delivered_at=optional_timestamp(row.delivered_at),
        callback_state=row.callback_state,
        callback_description=row.callback_description,
        callback_context=row.callback_context,
        callback_target_url=row.callback_target_url,
        payload=row.payload,
    )


async def _managed(edge: Edge, subject: Subject, name: str) -> RepositoryRow:
    """The repository, if `subject` may manage its webhooks (owners, site admins)."""
    repository = await edge.registry.repositories.require(subject, name, Action.PULL)
    namespace = namespace_of(name)
    check(
        may_manage(subject, namespace),
        f"only owners of {namespace!r} and site admins may manage the webhooks of {name!r}",
    )
    return repository


HOOKS = f"/repositories/{REPOSITORY}/-/webhooks"


@router.get(HOOKS, responses=errors(400, 401, 403, 404))
async def list_webhooks(
    name: RepositoryName,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[Webhook]:
    """The repository's webhooks, oldest first."""
    repository = await _managed(edge, subject, name)
    after = paging.after_id() or 0
    rows = sorted(await edge.hub.webhooks.for_repository(repository.id), key=lambda w: w.id)
    found = [_webhook(row) for row in rows if row.id > after][: paging.limit + 1]
    return page_of(request, response, paging, found, lambda hook: hook.id)


@router.post(HOOKS, status_code=201, responses=errors(400, 401, 403, 404, 409))
async def create_webhook(
    name: RepositoryName, body: WebhookCreate, subject: SignedIn, edge: Edge
) -> Webhook:
    """Call a URL on every tag pushed or moved (by a push, a mirror sync or a build)."""
    repository = await _managed(edge, subject, name)
    row = await edge.hub.webhooks.create(
        repository.id, body.name, body.url, body.secret, active=body.active
    )
    return _webhook(row)


@router.get(HOOKS + "/{webhook_id}", responses=errors(400, 401, 403, 404))
async def get_webhook(
    name: RepositoryName, webhook_id: Id, subject: SignedIn, edge: Edge
) -> Webhook:
    repository = await _managed(edge, subject, name)
    return _webhook(await edge.hub.webhooks.get(repository.id, webhook_id))


@router.patch(HOOKS + "/{webhook_id}", responses=errors(400, 401, 403, 404, 409))
async def update_webhook(
    name: RepositoryName, webhook_id: Id, body: WebhookPatch, subject: SignedIn, edge: Edge
) -> Webhook:
    repository = await _managed(edge, subject, name)
    row = await edge.hub.webhooks.update(repository.id, webhook_id, **body.model_dump())
    return _webhook(row)


@router.delete(
    HOOKS + "/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=errors(400, 401, 403, 404),
)
async def delete_webhook(
    name: RepositoryName, webhook_id: Id, subject: SignedIn, edge: Edge
) -> Response:
    """Delete the webhook and its delivery history."""
    repository = await _managed(edge, subject, name)
    await edge.hub.webhooks.delete(repository.id, webhook_id)
    return Response(status_code=204)


@router.get(HOOKS + "/{webhook_id}/deliveries", responses=errors(400, 401, 403, 404))
async def list_deliveries(
    name: RepositoryName,
    webhook_id: Id,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[Delivery]:
    """The webhook's deliveries, newest first: status, duration, the receiver's answer."""
    repository = await _managed(edge, subject, name)
    await edge.hub.webhooks.get(repository.id, webhook_id)
    rows = await edge.hub.webhooks.deliveries(
        webhook_id, paging.after_id(), paging.limit + 1, newest_first=True
    )
    return page_of(request, response, paging, [_delivery(r) for r in rows], lambda d: d.id)


@router.post(
    HOOKS + "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    responses=errors(400, 401, 403, 404),
)
async def redeliver(
    name: RepositoryName, webhook_id: Id, delivery_id: Id, subject: SignedIn, edge: Edge
) -> Redelivery:
    """Send a delivery's very payload again."""
    repository = await _managed(edge, subject, name)
    await edge.hub.webhooks.get(repository.id, webhook_id)
    job = await edge.hub.webhooks.redeliver(delivery_id, webhook_id=webhook_id)
    return Redelivery(job_id=job)


@router.post("/callbacks/{token}", responses=errors(400, 404), openapi_extra={"security": [{}]})
async def record_callback(
    token: Annotated[str, Path(min_length=1, max_length=128)], body: Callback, edge: Edge
) -> CallbackRecorded:
    """A receiver's verdict on a delivery (Docker Hub's callback_url); the secret URL is the
    credential."""
    row = await edge.hub.webhooks.record_callback(
        token, body.state, body.description, body.context, body.target_url
    )
    return CallbackRecorded(delivery_id=row.id, state=body.state)
