"""Per-registry client settings and credentials: `registries.json` under `$DOCKYARD_CONFIG`, with
Docker's `~/.docker/config.json` `auths` as a fallback for credentials.

Registry names are normalized the way references are (`index.docker.io`, `registry-1.docker.io`
and `https://index.docker.io/v1/` all mean `docker.io`), so settings saved under one spelling are
found under every other.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dockyard.config import ConfigError
from dockyard.oci.reference import DOCKER_HUB, DOCKER_HUB_ALIASES, DOCKER_HUB_API

CONFIG_ENV = "DOCKYARD_CONFIG"
CONFIG_FILE = "registries.json"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"


class TLSMode(StrEnum):
    """How to reach a registry: verified HTTPS, HTTPS without verification, or plain HTTP."""

    ENABLED = "enabled"
    INSECURE = "insecure"
    DISABLED = "disabled"


class Credential(BaseModel):
    """What to authenticate with: a user and password (or access token), or an identity token
    (an OAuth2 refresh token, as `docker login` stores for some registries), or a ready bearer
    `registry_token`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = ""
    password: str = Field(default="", repr=False)
    identity_token: str = Field(default="", repr=False)
    registry_token: str = Field(default="", repr=False)

    @property
    def has_basic(self) -> bool:
        return bool(self.username and self.password)


class RegistrySettings(BaseModel):
    """How to talk to one registry; `name` is the normalized registry name (`docker.io`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tls: TLSMode = TLSMode.ENABLED
    ca_file: Path | None = None
    ca_pem: str | None = Field(
        default=None, description="PEM certificates trusted for this registry"
    )
    req_per_sec: float = Field(default=0.0, ge=0, description="0: no limit")
    req_concurrent: int = Field(
        default=0, ge=0, description="0: no limit beyond the connection pool"
    )
    blob_chunk: int = Field(
        default=0, ge=0, description="upload blobs in chunks of this size; 0: whole"
    )
    credential: Credential | None = None

    @field_validator("name")
    @classmethod
    def _normalized(cls, value: str) -> str:
        return normalize_registry(value)

    @property
    def api_host(self) -> str:
        """The host (and port) that serves `/v2/`: Docker Hub's API lives on another host."""
        return DOCKER_HUB_API if self.name == DOCKER_HUB else self.name

    @property
    def base_url(self) -> str:
        scheme = "http" if self.tls is TLSMode.DISABLED else "https"
        return f"{scheme}://{self.api_host}"


def normalize_registry(text: str) -> str:
    """The registry name `text` means: scheme and path dropped, lowercased, Hub aliases folded."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    if not host:
        raise ValueError(f"{text!r} names no registry host")
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$DOCKYARD_CONFIG`, else `~/.config/dockyard`."""
    env = os.environ if environ is None else environ
    value = env.get(CONFIG_ENV)
    return Path(value).expanduser() if value else Path.home() / ".config" / "dockyard"


class ClientConfig(BaseModel):
    """Every registry's settings, as stored in `registries.json` (credentials included)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    registries: dict[str, RegistrySettings] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ClientConfig:
        """Read `path` (default: `registries.json` in `config_dir()`); a missing file is empty.

        Raises `ConfigError` naming the file and the key for anything malformed or unknown.
        """
        path = path or config_dir() / CONFIG_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls()
        try:
            data = json.loads(text)
            config = cls.model_validate(data)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        except ValidationError as exc:
            raise ConfigError(f"{path}: {_describe(exc)}") from None
        for key, settings in config.registries.items():
            if normalize_registry(key) != settings.name:
                raise ConfigError(
                    f"{path}: registries.{key} holds the settings of {settings.name!r}"
                )
        return config

    def save(self, path: Path | None = None) -> Path:
        """Write atomically with mode 0600 (it holds credentials); the folder is made 0700."""
        path = path or config_dir() / CONFIG_FILE
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = self.model_dump_json(indent=2, exclude_defaults=True).encode() + b"\n"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask; this is not
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def get(self, registry: str) -> RegistrySettings:
        """The settings stored for `registry`, or the defaults."""
        name = normalize_registry(registry)
        return self.registries.get(name) or RegistrySettings(name=name)

    def set(self, settings: RegistrySettings) -> None:
        """Store `settings` under its (normalized) name, replacing what was there."""
        name = normalize_registry(settings.name)
        self.registries[name] = settings.model_copy(update={"name": name})

    def update(self, registry: str, **changes: Any) -> RegistrySettings:
        """Change some settings of `registry` (validated); return the new settings."""
        current = self.get(registry).model_dump()
        current.update(changes)
        settings = RegistrySettings.model_validate(current)
        self.set(settings)
        return settings

    def login(self, registry: str, username: str, password: str) -> RegistrySettings:
        """Store a user and password (or access token) for `registry`."""
        return self.update(registry, credential=Credential(username=username, password=password))

    def logout(self, registry: str) -> bool:
        """Forget the credential of `registry`; whether there was one."""
        settings = self.get(registry)
        if settings.credential is None:
            return False
        self.update(registry, credential=None)
        return True


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r}")
        else:
            problems.append(f"{key}: {error['msg']}")
    return "; ".join(problems)


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    env = os.environ if environ is None else environ
    base = env.get(DOCKER_CONFIG_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".docker") / "config.json"


def docker_credentials(path: Path | None = None) -> dict[str, Credential]:
    """Credentials in Docker's config file `auths`, by normalized registry name.

    Reads `auth` (base64 `user:password`) or `username`/`password`, plus `identitytoken` and
    `registrytoken`. A missing file gives nothing; an unreadable entry is skipped (Docker's own
    file is not ours to refuse). Credential helpers (`credsStore`, `credHelpers`) are not run.
    """
    path = path or docker_config_path()
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read Docker's config: {exc}") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    found: dict[str, Credential] = {}
    for key, entry in (auths or {}).items():
        credential = _docker_entry(entry)
        if credential is not None:
            try:
                found.setdefault(normalize_registry(str(key)), credential)
            except ValueError:
                continue
    return found


def _docker_entry(entry: Any) -> Credential | None:
    if not isinstance(entry, dict):
        return None
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep:
            return None
    credential = Credential(
        username=username,
        password=password,
        identity_token=str(entry.get("identitytoken") or ""),
        registry_token=str(entry.get("registrytoken") or ""),
    )
    if not (credential.has_basic or credential.identity_token or credential.registry_token):
        return None
    return credential


def resolve(
    config: ClientConfig, registry: str, docker: Mapping[str, Credential] | None = None
) -> RegistrySettings:
    """`registry`'s settings with its credential, from our config first, then Docker's."""
    settings = config.get(registry)
    if settings.credential is None and docker:
        fallback = docker.get(settings.name)
        if fallback is not None:
            settings = settings.model_copy(update={"credential": fallback})
    return settings
