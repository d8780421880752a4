"""Settings: defaults, then a config file (YAML), then DOCKYARD_* variables, then flags.

Unknown keys are an error that names the key and where it came from: a misspelled setting is
never silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "DOCKYARD_"
# DOCKYARD_* variables that belong to the client side, not to the server's settings
_NOT_SERVER_SETTINGS = frozenset({"config", "server_config"})


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key and its source."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Path("./data")
    listen: str = "127.0.0.1:5000"
    database_url: str | None = Field(None, description="default: SQLite inside the data folder")
    admin_password: str | None = None
    public_url: str | None = Field(None, description="base URL clients reach this server at")
    service: str = "dockyard"
    workers: int = Field(1, ge=1, le=64)
    basic_cache_seconds: float = Field(60.0, ge=0)
    upload_expiry_seconds: float = Field(24 * 3600.0, gt=0)
    janitor_interval_seconds: float = Field(600.0, gt=0)
    gc_grace_seconds: float = Field(3600.0, ge=0)
    metadata_cache_seconds: float = Field(
        1.0, ge=0, description="how long another process's writes may go unseen; 0 turns it off"
    )
    rate_limit_per_second: float = Field(0.0, ge=0, description="per client; 0 turns it off")
    rate_limit_burst: int = Field(100, ge=1)
    log_level: str = "info"
    # --- the hub -------------------------------------------------------------------------------
    sync_interval_seconds: float = Field(
        900.0, gt=0, description="how often every active mirror is reconciled with upstream"
    )
    run_workers: bool = Field(True, description="run background jobs inside `dockyard serve`")
    worker_concurrency: int = Field(4, ge=1, le=64, description="jobs one worker runs at once")
    job_lease_seconds: float = Field(
        30.0, gt=0, description="a job whose worker stops renewing its lease this long is retried"
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_allow_private: bool = Field(
        False, description="allow webhook URLs on loopback and private networks"
    )

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0] or "127.0.0.1"

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])


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
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = sources.get(key, "settings")
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown setting {key!r} in {where}")
            else:
                problems.append(f"{key} ({where}): {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
