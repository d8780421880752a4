"""Pages of a listing: `?limit=` and an opaque `?cursor=` in; `{"items", "next"}` and a
`Link: <...>; rel="next"` header out.

A cursor is the key the previous page ended at (a name or an id), wrapped so clients treat it
as opaque. Routers fetch one item more than `limit` after the key: the extra one tells that
another page follows.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

import orjson
from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from dockyard.api.errors import InvalidRequest
from dockyard.api.manage.schema import INT32_MAX

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_KEY = re.compile(r"[a-z0-9._/-]{1,255}")  # every name a listing is ordered by

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(description="the cursor of the next page; null on the last one")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: str | int | None  # the key the previous page ended at

    def after_name(self) -> str | None:
        if self.after is None or isinstance(self.after, str):
            return self.after
        raise _bad_cursor()

    def after_id(self) -> int | None:
        if self.after is None or isinstance(self.after, int):
            return self.after
        raise _bad_cursor()


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest(
        "query.cursor: not a cursor this listing gave out",
        {"field": "query.cursor", "reason": "cursor_invalid"},
    )


def encode_cursor(key: str | int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | int:
    """The key inside a cursor; `InvalidRequest` if it is not one this API gave out."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise _bad_cursor() from None
    if isinstance(key, str) and _KEY.fullmatch(key):
        return key
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key <= INT32_MAX:
        return key
    raise _bad_cursor()


def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="items per page (1 to 100)")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="the `next` of the previous page, as given"),
    ] = None,
) -> PageRequest:
    return PageRequest(limit, None if cursor is None else decode_cursor(cursor))


Paging = Annotated[PageRequest, Depends(page_request)]


def page_of(
    request: Request,
    response: Response,
    paging: PageRequest,
    fetched: Sequence[T],
    key: Callable[[T], str | int],
) -> Page[T]:
    """The page for up to `limit + 1` items fetched in key order after the cursor."""
    items = list(fetched[: paging.limit])
    following = None
    if len(fetched) > paging.limit and items:
        following = encode_cursor(key(items[-1]))
        url = request.url.include_query_params(limit=paging.limit, cursor=following)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return Page(items=items, next=following)
