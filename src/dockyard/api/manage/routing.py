"""The route class of every /api/v1 operation: the caller is checked before the body is read,
and the body is read only up to `api_body_limit_bytes`.

FastAPI reads and parses an operation's body before it resolves any dependency, so without
this an anonymous client could make the server hold any body it liked before the 401 (and
its parsed JSON, several times its size, besides).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from dockyard.api.bodies import small_body
from dockyard.api.manage.access import refuse_anonymous, requires_sign_in, subject_of
from dockyard.api.manage.schema import errors


class GuardedRoute(APIRoute):
    """An operation that reads a body only after its caller passed `SignedIn` (when it takes
    it), and answers 413 past `api_body_limit_bytes` without reading the rest."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            self.responses = {**errors(413), **self.responses}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # FastAPI reads no body for this operation
        sign_in = requires_sign_in(self.dependant)

        async def guarded(request: Request) -> Response:
            if sign_in:
                refuse_anonymous(await subject_of(request))
            limit: int = request.app.state.dockyard.settings.api_body_limit_bytes
            body = await small_body(request, limit, "the request body")
            return await handler(Request(request.scope, _replay(body, request.receive)))

        return guarded


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over `body` (already read, whole) and then what `receive` says
    (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
