"""An async OCI client: remote registries and OCI layout directories behind one protocol.

`Client` holds per-registry settings and one aiohttp session per registry host;
`RegistryClient` runs the distribution API over it (manifests, blobs, tags, referrers).
"""

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, Credential, RegistrySettings, TLSMode

__all__ = [
    "Client",
    "ClientConfig",
    "Credential",
    "RegistryClient",
    "RegistrySettings",
    "RetryPolicy",
    "TLSMode",
]
