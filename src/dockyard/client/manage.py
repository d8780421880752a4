"""A client for a Dockyard's management API (`/api/v1`), as `dockyard catalog` and
`dockyard mirror` use it: credentials from `dockyard registry login` (or Docker's config) for
the server's host, JSON in and out, errors from the API's envelope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from dockyard.client.hosts import SessionFactory, default_session
from dockyard.client.settings import ClientConfig, Credential, RegistrySettings, TLSMode, resolve

Json = dict[str, Any]


class ApiError(Exception):
    """The API refused: its status, the envelope's first `code` and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.message = message


class ManageClient:
    """Calls to `server` (`http://127.0.0.1:5000`, or a host whose TLS mode `config` holds),
    signed in with the credential `config` (or Docker's config, `docker`) holds for it."""

    def __init__(
        self,
        server: str,
        config: ClientConfig | None = None,
        *,
        docker: Mapping[str, Credential] | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        text = server.rstrip("/")
        scheme, _, host = text.rpartition("://")
        settings = resolve(config or ClientConfig(), host, docker)
        if scheme == "http":
            settings = settings.model_copy(update={"tls": TLSMode.DISABLED})
        elif scheme == "https" and settings.tls is TLSMode.DISABLED:
            settings = settings.model_copy(update={"tls": TLSMode.ENABLED})
        self.settings: RegistrySettings = settings
        self.base = f"{'http' if settings.tls is TLSMode.DISABLED else 'https'}://{host}"
        self._session = (session_factory or default_session)(settings)

    def _headers(self) -> dict[str, str]:
        credential = self.settings.credential
        if credential is None or not credential.has_basic:
            return {}
        return {
            "Authorization": aiohttp.BasicAuth(credential.username, credential.password).encode()
        }

    async def call(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Json:
        """One request; the decoded JSON answer ({} for an empty one)."""
        async with self._session.request(
            method,
            f"{self.base}/api/v1{path}",
            json=body,
            params=params,
            headers=self._headers(),
            allow_redirects=False,
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise _error(response.status, text)
            if not text:
                return {}
            answer: Json = await response.json(content_type=None)
            return answer

    async def text(self, path: str) -> str:
        """A GET whose answer is text (a build log)."""
        async with self._session.get(
            f"{self.base}/api/v1{path}", headers=self._headers(), allow_redirects=False
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise _error(response.status, text)
            return text

    async def pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Json]:
        """Every item of a listing, following its `next` cursors."""
        query = dict(params or {})
        while True:
            page = await self.call("GET", path, params=query)
            for item in page.get("items", []):
                yield item
            if not page.get("next"):
                return
            query["cursor"] = page["next"]

    async def close(self) -> None:
        await self._session.close()


def _error(status: int, text: str) -> ApiError:
    try:
        first = json.loads(text)["errors"][0]
        return ApiError(status, str(first.get("code", "")), str(first.get("message", "")))
    except (ValueError, KeyError, IndexError, TypeError):
        return ApiError(status, "", text.strip()[:200] or f"HTTP {status}")
