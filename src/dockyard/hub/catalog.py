"""The upstream catalog: what a site admin offers for mirroring, with its tags by variant.

An entry names where its images are (a repository on a registry) and, for hardened images,
where their signed attestations are (often another registry). Its tags are read from
upstream by `refresh` (and by every mirror sync), grouped into variants by the words of the
tag (`3.13-dev` → `dev`, `3.13-fips-dev` → `fips-dev`, `3.13` → `standard`), and marked
end-of-life by the entry's `eol_pattern` or by the upstream annotation `EOL_ANNOTATION` on
the tag's manifest or index.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any, cast

import aiohttp

from dockyard.auth.policy import Subject
from dockyard.auth.secrets import token_hash
from dockyard.client.hosts import SessionFactory
from dockyard.client.registry import RegistryClient
from dockyard.client.settings import TLSMode
from dockyard.copy.sync_report import describe_error
from dockyard.hub.errors import Conflict, Invalid, NotFound, UpstreamFailed
from dockyard.hub.upstream import is_image_tag, upstream_client, upstream_of
from dockyard.metadata import catalog as rows
from dockyard.metadata import mirrors as mirror_rows
from dockyard.metadata.catalog import EntryRow, TagRow
from dockyard.metadata.db import Database
from dockyard.oci.errors import Denied, OciError
from dockyard.oci.reference import Reference

ENTRY_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
KINDS = ("image", "chart")
VARIANT_WORDS = ("dev", "fips", "stig", "compat")
EOL_ANNOTATION = "dev.dockyard.end-of-life"
_HEADS_AT_ONCE = 8
EDITABLE = (
    "description",
    "source",
    "source_tls",
    "username",
    "password",
    "attestation_source",
    "attestation_tls",
    "attestation_username",
    "attestation_password",
    "eol_pattern",
)
"""What `Catalog.edit` may change: everything but the name and kind mirrors are named after."""


def variant_of(tag: str) -> str:
    """The variant a tag belongs to, from its dash-separated words after the first."""
    words = [word for word in tag.split("-")[1:] if word in VARIANT_WORDS]
    return "-".join(words) or "standard"


def eol_by_annotation(annotations: dict[str, str], today: datetime.date | None = None) -> bool:
    """Whether an annotation says end-of-life: `true`, or a date (YYYY-MM-DD) already past."""
    value = annotations.get(EOL_ANNOTATION, "").strip().lower()
    if value in ("true", "yes", "1"):
        return True
    try:
        date = datetime.date.fromisoformat(value[:10])
    except ValueError:
        return False
    return date <= (today or datetime.date.today())


def _require_admin(subject: Subject) -> None:
    if not subject.is_admin:
        raise Denied("only a site admin can change the catalog")


class Catalog:
    """Catalog entries and their tags (`session_factory`: how upstream is reached)."""

    def __init__(self, db: Database, session_factory: SessionFactory | None = None) -> None:
        self.db = db
        self.session_factory = session_factory

    async def add(
        self,
        subject: Subject,
        name: str,
        kind: str,
        source: str,
        *,
        description: str = "",
        source_tls: str = "enabled",
        username: str | None = None,
        password: str | None = None,
        attestation_source: str | None = None,
        attestation_tls: str | None = None,
        attestation_username: str | None = None,
        attestation_password: str | None = None,
        eol_pattern: str | None = None,
    ) -> tuple[EntryRow, str]:
        """Register an upstream; returns the entry and the secret of its notification URL
        (shown once: upstream POSTs to `/api/v1/catalog/hooks/<secret>` when it pushes)."""
        _require_admin(subject)
        _check_entry(name, kind, source, source_tls, attestation_source, attestation_tls)
        if eol_pattern is not None:
            _check_pattern(eol_pattern)
        token = secrets.token_urlsafe(32)
        async with self.db.write() as conn:
            if await rows.by_name(conn, name) is not None:
                raise Conflict(f"the catalog already has an entry named {name!r}")
            entry = await rows.insert_entry(
                conn,
                token_hash(token),
                name=name,
                kind=kind,
                description=description,
                source=source,
                source_tls=source_tls,
                username=username,
                password=password,
                attestation_source=attestation_source,
                attestation_tls=attestation_tls,
                attestation_username=attestation_username,
                attestation_password=attestation_password,
                eol_pattern=eol_pattern,
            )
        return entry, token

    async def edit(self, subject: Subject, name: str, **changes: str | None) -> EntryRow:
        """Change an entry (site admins): any of `EDITABLE`; None clears an optional one
        (username clears the password with it). Its name and kind stay: mirrors are named
        after them. A new source drops the tags read from the old one."""
        _require_admin(subject)
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise Invalid(f"cannot change {', '.join(sorted(unknown))} of a catalog entry")
        for required in ("source", "source_tls", "description"):
            if required in changes and changes[required] is None:
                raise Invalid(f"{required} cannot be removed from a catalog entry")
        if "username" in changes and changes["username"] is None:
            changes["password"] = None
        if "attestation_username" in changes and changes["attestation_username"] is None:
            changes["attestation_password"] = None
        async with self.db.write() as conn:
            entry = await rows.by_name(conn, name)
            if entry is None:
                raise NotFound(f"the catalog has no entry named {name!r}", {"name": name})
            after = dataclasses.replace(entry, **cast(dict[str, Any], changes))
            _check_entry(
                after.name,
                after.kind,
                after.source,
                after.source_tls,
                after.attestation_source,
                after.attestation_tls,
            )
            if after.eol_pattern is not None:
                _check_pattern(after.eol_pattern)
            if after.source != entry.source:
                await rows.replace_tags(conn, entry.id, [])
            return await rows.update_entry(conn, entry.id, **changes)

    async def get(self, name: str) -> EntryRow:
        async with self.db.read() as conn:
            entry = await rows.by_name(conn, name)
        if entry is None:
            raise NotFound(f"the catalog has no entry named {name!r}", {"name": name})
        return entry

    async def entries(self, last: str | None = None, limit: int = 50) -> list[EntryRow]:
        """Entries in name order after `last`."""
        async with self.db.read() as conn:
            return await rows.entries_after(conn, last, limit)

    async def remove(self, subject: Subject, name: str) -> None:
        """Remove an entry nothing mirrors any more."""
        _require_admin(subject)
        async with self.db.write() as conn:
            entry = await rows.by_name(conn, name)
            if entry is None:
                raise NotFound(f"the catalog has no entry named {name!r}", {"name": name})
            if await mirror_rows.find(conn, entry_id=entry.id, limit=1):
                raise Conflict(
                    f"entry {name!r} is mirrored into repositories: stop and delete those "
                    "mirrors first"
                )
            await rows.delete_entry(conn, entry.id)

    async def tags(self, entry: EntryRow) -> list[TagRow]:
        """The entry's tags as last read from upstream."""
        async with self.db.read() as conn:
            return await rows.tags(conn, entry.id)

    async def entry_for_hook(self, token: str) -> EntryRow:
        async with self.db.read() as conn:
            entry = await rows.by_hook_token(conn, token_hash(token))
        if entry is None:
            raise NotFound("no catalog entry is notified at this URL")
        return entry

    async def refresh_as(self, subject: Subject, entry: EntryRow) -> list[TagRow]:
        """`refresh`, when a site admin asks for it."""
        _require_admin(subject)
        return await self.refresh(entry)

    async def refresh(self, entry: EntryRow, client: RegistryClient | None = None) -> list[TagRow]:
        """Read the entry's tags from upstream (a HEAD each; a GET for those whose digest
        changed, for the end-of-life annotation) and store them."""
        own = client is None
        client = client or upstream_client(entry, self.session_factory)
        try:
            found = await self._read_tags(entry, client)
        except (OciError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise UpstreamFailed(
                f"cannot read the tags of {entry.source}: {describe_error(exc)}",
                {"source": entry.source},
            ) from exc
        finally:
            if own:
                await client.close()
        async with self.db.write() as conn:
            await rows.replace_tags(conn, entry.id, found)
        return found

    async def _read_tags(self, entry: EntryRow, client: RegistryClient) -> list[TagRow]:
        images = upstream_of(entry).images
        names = [t for t in await client.tag_list(images) if is_image_tag(t)]
        known = {t.tag: t for t in await self.tags(entry)}
        pattern = re.compile(entry.eol_pattern) if entry.eol_pattern else None
        gate = asyncio.Semaphore(_HEADS_AT_ONCE)

        async def read(tag: str) -> TagRow | None:
            async with gate:
                head = await client.manifest_head(images.with_tag(tag))
                if head is None:
                    return None  # deleted upstream since the listing
                digest = str(head.digest)
                before = known.get(tag)
                if before is not None and before.digest == digest and pattern is None:
                    return before
                annotated = False
                if pattern is None or not pattern.fullmatch(tag):
                    manifest = await client.manifest_get(images.with_digest(digest))
                    annotated = eol_by_annotation(manifest.annotations)
            eol = bool(pattern and pattern.fullmatch(tag)) or annotated
            return TagRow(tag, digest, variant_of(tag), eol, time.time())

        read_all = await asyncio.gather(*(read(tag) for tag in names))
        return [row for row in read_all if row is not None]


def group_by_variant(tags: Sequence[TagRow]) -> dict[str, list[TagRow]]:
    """Tags by variant, variants in name order with `standard` first."""
    groups: dict[str, list[TagRow]] = {}
    for tag in tags:
        groups.setdefault(tag.variant, []).append(tag)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] != "standard", kv[0])))


def _check_entry(
    name: str,
    kind: str,
    source: str,
    source_tls: str,
    attestation_source: str | None,
    attestation_tls: str | None,
) -> None:
    if not ENTRY_NAME.fullmatch(name) or len(name) > 100:
        raise Invalid(
            f"catalog entry name {name!r} must be lowercase letters and digits, separated by "
            "single '.', '_' or '-' (it becomes the repository name dhi-<name>)"
        )
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    for label, text in (("source", source), ("attestation_source", attestation_source)):
        if text is None:
            continue
        try:
            ref = Reference.parse(text)
        except OciError as exc:
            raise Invalid(f"{label}: {exc.message}") from exc
        if ref.digest is not None or text.rsplit("/", 1)[-1].count(":"):
            raise Invalid(f"{label} {text!r} must name a repository, without tag or digest")
    for label, mode in (("source_tls", source_tls), ("attestation_tls", attestation_tls)):
        if mode is not None and mode not in {m.value for m in TLSMode}:
            raise Invalid(f"{label} must be enabled, insecure or disabled, not {mode!r}")


def _check_pattern(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise Invalid(f"eol_pattern {pattern!r} is not a regular expression: {exc}") from exc
