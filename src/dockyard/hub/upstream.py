"""Reaching a catalog entry's upstream: its repositories and a client with its settings."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.client.hosts import Client, SessionFactory
from dockyard.client.registry import RegistryClient
from dockyard.client.settings import ClientConfig, Credential, RegistrySettings, TLSMode
from dockyard.metadata.catalog import EntryRow
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import is_digest_tag, is_fallback_tag


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where an entry's images are (`images`) and its attestations (`attestations`; None when
    they sit beside the images); both name a repository, their tags are ignored."""

    images: Reference
    attestations: Reference | None


def upstream_of(entry: EntryRow) -> Upstream:
    images = Reference.parse(entry.source)
    attestations = Reference.parse(entry.attestation_source) if entry.attestation_source else None
    return Upstream(images, attestations)


def client_config(entry: EntryRow) -> ClientConfig:
    """Settings for the entry's registries (TLS mode, credentials), nothing from the user's."""
    config = ClientConfig()
    upstream = upstream_of(entry)
    config.set(
        _settings(upstream.images.registry, entry.source_tls, entry.username, entry.password)
    )
    if upstream.attestations is not None:
        same = upstream.attestations.registry == upstream.images.registry
        config.set(
            _settings(
                upstream.attestations.registry,
                entry.attestation_tls or entry.source_tls,
                entry.attestation_username if not same else entry.username,
                entry.attestation_password if not same else entry.password,
            )
        )
    return config


def _settings(registry: str, tls: str, user: str | None, password: str | None) -> RegistrySettings:
    credential = Credential(username=user, password=password or "") if user else None
    return RegistrySettings(name=registry, tls=TLSMode(tls), credential=credential)


def upstream_client(
    entry: EntryRow, session_factory: SessionFactory | None = None
) -> RegistryClient:
    """A client for the entry's upstream registries; the caller closes it."""
    return RegistryClient(Client(client_config(entry), session_factory=session_factory))


def is_image_tag(tag: str) -> bool:
    """Whether `tag` names an image of the entry (not a digest or fallback referrers tag)."""
    return not (is_fallback_tag(tag) or is_digest_tag(tag))  # copied with their subject
