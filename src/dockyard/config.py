"""Settings: defaults, then a config file (YAML), then DOCKYARD_* variables, then flags.

Unknown keys are an error that names the key and where it came from: a misspelled setting is
never silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "DOCKYARD_"
# DOCKYARD_* variables that belong to the client side, not to the server's settings
_NOT_SERVER_SETTINGS = frozenset({"config", "server_config", "server"})


_PLATFORM = re.compile(r"[a-z0-9_.-]+/[a-z0-9_.-]+", re.IGNORECASE)


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key and its source."""


# a repository name prefix: lowercase path components (the full check is oci/names.py's)
_PREFIX = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)


class ProxyUpstream(BaseModel):
    """A registry that repositories are pulled through from and cached (a registry mirror).

    Manifests by digest and blobs are cached for good (they cannot change); a cached tag is
    served for `ttl_seconds`, then checked upstream again (a HEAD: no pull counted by Docker
    Hub when it did not move). When upstream cannot be reached, cached content is served.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str | None = Field(
        None,
        description="repositories under this prefix: with `hub`, hub/library/nginx is "
        "library/nginx upstream; none: every repository that is not local (a Docker daemon's "
        "registry-mirrors entry)",
    )
    url: str = Field(description="the upstream registry, e.g. https://registry-1.docker.io")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    tls: Literal["enabled", "insecure", "disabled"] | None = Field(
        None, description="default: enabled for https:// URLs, disabled for http://"
    )
    ttl_seconds: float = Field(
        300.0, ge=0, description="how long a cached tag is served before upstream is asked again"
    )
    visibility: Literal["public", "private"] = Field(
        "public", description="of the cached repositories; public lets anyone pull, as a mirror"
    )

    @field_validator("namespace")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.fullmatch(value):
            raise ValueError(f"{value!r} is not a repository name prefix (e.g. hub or mirror/ghcr)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError(f"{value!r} must be an http:// or https:// URL of a registry")
        if "/" in rest.rstrip("/"):
            raise ValueError(f"{value!r} must name a registry host, without a path")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> ProxyUpstream:
        plain = self.url.startswith("http://")
        if self.tls is not None and plain != (self.tls == "disabled"):
            raise ValueError(f"tls {self.tls!r} does not fit {self.url}")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    @property
    def tls_mode(self) -> str:
        """`enabled`, `insecure` or `disabled` (plain HTTP), as the client settings say it."""
        if self.tls is not None:
            return self.tls
        return "disabled" if self.url.startswith("http://") else "enabled"


class PackageSource(BaseModel):
    """Where the packages of one distribution come from: an APT archive, its suites and the
    keyring its `InRelease` files must be signed by (build/apt/sources.py reads it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: str = Field(description="the `ID` of the base's /etc/os-release: debian, ubuntu")
    uri: str = Field(description="the archive's root, e.g. http://deb.debian.org/debian")
    suites: list[str] = Field(
        min_length=1,
        description="suites, literal (bookworm-updates) or with `{codename}`, filled in from "
        "the base's VERSION_CODENAME ({codename}, {codename}-updates)",
    )
    components: list[str] = Field(default_factory=lambda: ["main"], min_length=1)
    architectures: list[str] = Field(
        default_factory=list, description="the ones the archive offers (empty: any asked for)"
    )
    keyring: Path = Field(
        description="OpenPGP certificates (binary .gpg or armored .asc), or a folder of them"
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")


def default_workers() -> int:
    """One server process per CPU this process may run on, at most 4 (each takes ~150 MiB)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


class ApkSource(BaseModel):
    """Where the packages of an apk-based distribution (Alpine) come from: a mirror's release
    folder, its repositories and the folder of RSA keys its indexes and packages must be
    signed by (build/apk/sources.py reads it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: str = Field(
        "alpine", description="the `ID` of the base's /etc/os-release this source serves"
    )
    url: str = Field(
        description="the release folder, `{version}` filled in from the base's VERSION_ID "
        "(major.minor), e.g. https://dl-cdn.alpinelinux.org/alpine/v{version}"
    )
    repositories: list[str] = Field(
        default_factory=lambda: ["main", "community"],
        min_length=1,
        description="repository folders under `url`, in apk's order of preference",
    )
    keys: Path = Field(
        description="a folder of trusted RSA public keys (PEM), named as the `.SIGN.RSA.<name>` "
        "files of signed indexes name them (/etc/apk/keys style)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Path("./data")
    listen: str = "127.0.0.1:5000"
    database_url: str | None = Field(None, description="default: SQLite inside the data folder")
    admin_password: str | None = None
    public_url: str | None = Field(None, description="base URL clients reach this server at")
    service: str = "dockyard"
    workers: int = Field(
        default_factory=lambda: default_workers(),
        ge=1,
        le=64,
        description="server processes; default one per CPU core, at most 4",
    )
    basic_cache_seconds: float = Field(60.0, ge=0)
    upload_expiry_seconds: float = Field(24 * 3600.0, gt=0)
    # upload sessions open at once (0: no cap); each costs a folder until it ends or expires
    upload_sessions_per_repository: int = Field(200, ge=0)
    upload_sessions_per_account: int = Field(1000, ge=0)
    janitor_interval_seconds: float = Field(600.0, gt=0)
    gc_grace_seconds: float = Field(3600.0, ge=0)
    metadata_cache_seconds: float = Field(
        1.0, ge=0, description="how long another host's writes may go unseen; 0 turns it off"
    )
    rate_limit_per_second: float = Field(0.0, ge=0, description="per client; 0 turns it off")
    rate_limit_burst: int = Field(100, ge=1)
    api_body_limit_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="the largest request body /api/v1 reads (413 past it)",
    )
    login_failures_per_address: int = Field(
        30, ge=0, description="failed sign-ins from one client address per window; 0: no limit"
    )
    login_failures_per_account_address: int = Field(
        5, ge=0, description="failed sign-ins to one account from one address per window; 0: none"
    )
    login_failures_per_account: int = Field(
        100,
        ge=0,
        description="failed sign-ins to one account from all addresses per window (addresses "
        "it signed in from lately are exempt); 0: no limit",
    )
    login_failure_window_seconds: float = Field(
        300.0, gt=0, description="the failures above are allowed again over this time"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For names the "
        "client (for the limits and the logs); comma-separated in DOCKYARD_TRUSTED_PROXIES",
    )
    log_level: str = "info"
    # --- customizations ----------------------------------------------------------------------
    package_sources: list[PackageSource] | None = Field(
        None,
        description="where the OS packages of customizations come from (YAML list; JSON in "
        "DOCKYARD_PACKAGE_SOURCES); unset: this machine's own apt sources, for bases of its "
        "distribution",
    )
    package_check_interval_seconds: float = Field(
        6 * 3600.0,
        ge=0,
        description="how often built customizations are checked for newer package versions "
        "(security updates), which rebuild them; 0 turns the check off",
    )
    apk_sources: list[ApkSource] = Field(
        default_factory=list,
        description="where the Alpine (apk) packages of customizations come from (YAML list; "
        "JSON in DOCKYARD_APK_SOURCES): release URL with `{version}`, repositories, keys folder; "
        "empty: customizations of Alpine bases cannot add packages",
    )
    # --- the hub -------------------------------------------------------------------------------
    sync_interval_seconds: float = Field(
        900.0, gt=0, description="how often every active mirror is reconciled with upstream"
    )
    run_workers: bool = Field(True, description="run background jobs inside `dockyard serve`")
    mirror_parallel_tags: int = Field(4, ge=1, le=64, description="tags one mirror copies at once")
    worker_concurrency: int = Field(4, ge=1, le=64, description="jobs one worker runs at once")
    job_lease_seconds: float = Field(
        30.0, gt=0, description="a job whose worker stops renewing its lease this long is retried"
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_allow_private: bool = Field(
        False, description="allow webhook URLs on loopback and private networks"
    )
    # --- sending big blobs ----------------------------------------------------------------------
    blob_listen: str | None = Field(
        None,
        description="HOST:PORT of a second listener that sends blobs with sendfile; GETs of "
        "big blobs are redirected to it with a signed link (unset: off)",
    )
    blob_url: str | None = Field(
        None, description="base URL clients reach blob_listen at (default http://<blob_listen>)"
    )
    blob_redirect_min_bytes: int = Field(
        8 * 1024 * 1024,
        ge=0,
        description="smaller blobs are sent directly: for them the redirect's round trip costs "
        "more than sendfile saves",
    )
    # --- manifests ----------------------------------------------------------------------------
    index_platforms: Literal["all", "none", "list"] = Field(
        "all",
        description="which entries of a pushed index must already be in the repository "
        "(distribution's validation.manifests.indexes.platforms): all; none (sparse indexes, "
        "as a platform-subset copy makes); list (those of index_platform_list). A repository's "
        "own sparse_indexes setting wins",
    )
    index_platform_list: list[str] = Field(
        default_factory=list,
        description="with index_platforms: list, the platforms (os/arch, any variant) whose "
        "entries must exist (comma-separated in DOCKYARD_INDEX_PLATFORM_LIST)",
    )
    # --- the pull-through cache ---------------------------------------------------------------
    proxies: list[ProxyUpstream] = Field(
        default_factory=list,
        description="upstream registries pulled through (YAML list; JSON in DOCKYARD_PROXIES)",
    )

    @field_validator("index_platform_list", "trusted_proxies", mode="before")
    @classmethod
    def _list_text(cls, value: Any) -> Any:
        return [p for p in re.split(r"[,\s]+", value) if p] if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{network!r} is not an address or network (as 10.0.0.0/8 or ::1)"
                ) from None
        return value

    @field_validator("index_platform_list")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        for platform in value:
            if not _PLATFORM.fullmatch(platform):
                raise ValueError(f"{platform!r} is not a platform: os/arch, as linux/arm64")
        return value

    @model_validator(mode="after")
    def _platform_list_with_list(self) -> Settings:
        if (self.index_platforms == "list") != bool(self.index_platform_list):
            raise ValueError(
                "index_platform_list names the platforms to check when (and only when) "
                "index_platforms is list"
            )
        return self

    @field_validator("proxies", "package_sources", "apk_sources", mode="before")
    @classmethod
    def _proxies_text(cls, value: Any) -> Any:
        # DOCKYARD_PROXIES, _PACKAGE_SOURCES and _APK_SOURCES hold lists as JSON (or YAML flow) text
        return (yaml.safe_load(value) or []) if isinstance(value, str) else value

    @field_validator("proxies")
    @classmethod
    def _one_per_namespace(cls, value: list[ProxyUpstream]) -> list[ProxyUpstream]:
        seen: set[str | None] = set()
        for proxy in value:
            if proxy.namespace in seen:
                which = f"namespace {proxy.namespace!r}" if proxy.namespace else "every namespace"
                raise ValueError(f"two proxies are configured for {which}")
            seen.add(proxy.namespace)
        return value

    @field_validator("blob_listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdecimal() or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} is not HOST:PORT (a port from 1 to 65535)")
        return value

    @field_validator("blob_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    # where each setting came from (a file, an environment variable, a flag), for messages
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def source_of(self, key: str) -> str | None:
        """Where setting `key` came from, as `load_settings` found it; None for a default."""
        return self._sources.get(key)

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0] or "127.0.0.1"

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def blob_address(self) -> tuple[str, int] | None:
        """`blob_listen` as (host, port) to bind; None when it is off."""
        if self.blob_listen is None:
            return None
        host, _, port = self.blob_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def blob_base_url(self) -> str:
        """Where clients are sent for blobs: `blob_url`, else http:// and `blob_listen`."""
        return self.blob_url or f"http://{self.blob_listen}"


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Settings from every source, later sources winning; `flags` that are None are unset."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a mapping of settings")
        for key, value in loaded.items():
            values[str(key)] = value
            sources[str(key)] = str(config_file)
    for env_key, value in os.environ.items():
        if env_key.startswith(ENV_PREFIX):
            key = env_key[len(ENV_PREFIX) :].lower()
            if key in _NOT_SERVER_SETTINGS:
                continue
            values[key] = value
            sources[key] = f"environment variable {env_key}"
    for key, value in flags.items():
        if value is not None:
            values[key] = value
            sources[key] = f"--{key.replace('_', '-')}"
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = sources.get(key, "settings")
            # a nested key is named by its path: proxies.0.usernme
            path = ".".join(str(part) for part in error["loc"]) or "?"
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown setting {path!r} in {where}")
            else:
                problems.append(f"{path} ({where}): {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
    settings._sources.update(sources)
    return settings
