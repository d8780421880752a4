"""The management REST API, `/api/v1` (FastAPI), with its OpenAPI document at
`/api/v1/openapi.json` and interactive docs at `/api/v1/docs`.

One module per resource, each an `APIRouter` listed in `app.ROUTERS`. A router's operations
take `SignedIn` (or `Caller`) and `Edge` from `access.py`, decide access with `check` over
`auth/policy.py` (or through the services, which check themselves), list their error statuses
with `schema.errors(...)`, page listings with `pagination.Paging` and `page_of`, and raise
errors rather than answer them: `api/errors.py` renders every one in the `/v2` envelope.
Things inside a repository hang under `repositories.REPOSITORY` + `/-/...`.
"""

from dockyard.api.manage.app import create_manage_api

__all__ = ["create_manage_api"]
