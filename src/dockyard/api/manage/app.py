"""The management API's FastAPI app: its routers, its error handlers and its OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.datastructures import State

from dockyard.api.errors import API_EXCEPTION_HANDLERS
from dockyard.api.manage import (
    catalog,
    customizations,
    jobs,
    mirrors,
    orgs,
    repositories,
    tokens,
    users,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    orgs.router,
    users.router,
    tokens.router,
    repositories.router,
    webhooks.router,
    catalog.router,
    mirrors.router,
    customizations.router,
    jobs.router,
)
"""Every resource of the API, one router each; a new resource adds its router here."""

DESCRIPTION = """\
Organizations, members, access tokens, users and repositories of this Dockyard; its catalog
of upstream repositories, the mirrors of them, their sync runs; webhooks and their deliveries;
and the background jobs that do the work.

**Sign in** as for `/v2`: HTTP Basic with a password or an access token, or a Bearer token from
`/token`. Without credentials an operation answers 401 (a few listings answer with public
data); signed in but not allowed, 403 with a message that says who may.

**Errors** come in the envelope of `/v2`: `{"errors":[{"code","message","detail"}]}`.

**Listings** take `limit` (1 to 100, default 50) and `cursor` (the `next` of the previous
page) and answer `{"items":[...],"next":"..."|null}`, with a `Link: <...>; rel="next"` header
while more pages follow.
"""

SECURITY_SCHEMES = {
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "a user name with a password or an access token",
    },
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}


def create_manage_api(state: State) -> FastAPI:
    """The management API, to mount at /api/v1, reading the services from `state.dockyard`.

    `state` is the state object of the app it is mounted in: the edge's `EdgeState`, set when
    that app starts, and `api/authn.py` find it there through `request.app.state` as on /v2.
    """
    api = FastAPI(
        title="Dockyard management API",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        redirect_slashes=False,
        generate_unique_id_function=lambda route: route.name,  # operationId: the function's name
        exception_handlers=API_EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    api.state = state
    for router in ROUTERS:
        api.include_router(router)
    _document_security(api)
    return api


def _document_security(api: FastAPI) -> None:
    """Add the sign-in schemes to the OpenAPI document FastAPI generates."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        fresh = api.openapi_schema is None
        schema = generate()
        if fresh:
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            schema["security"] = [{"basic": []}, {"bearer": []}]
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
