"""Client settings: registries.json (0600, unknown keys refused), Docker's config as a fallback
for credentials, registry names normalized."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.client.settings import (
    ClientConfig,
    Credential,
    RegistrySettings,
    TLSMode,
    config_dir,
    docker_credentials,
    normalize_registry,
    resolve,
)
from dockyard.config import ConfigError


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("Registry.Example.com:5000", "registry.example.com:5000"),
        ("http://localhost:5000/some/path", "localhost:5000"),
    ],
)
def test_registry_names_are_normalized(text: str, name: str) -> None:
    assert normalize_registry(text) == name


def test_docker_hub_settings_reach_the_api_host() -> None:
    settings = RegistrySettings(name="docker.io")
    assert settings.base_url == "https://registry-1.docker.io"
    assert (
        RegistrySettings(name="r.test:5000", tls=TLSMode.DISABLED).base_url == "http://r.test:5000"
    )


def test_config_dir_follows_the_environment(tmp_path: Path) -> None:
    assert config_dir({"DOCKYARD_CONFIG": str(tmp_path)}) == tmp_path
    assert config_dir({}) == Path.home() / ".config" / "dockyard"


def test_saved_config_is_private_and_round_trips(tmp_path: Path) -> None:
    config = ClientConfig()
    config.login("index.docker.io", "alice", "s3cret")
    config.update("r.test:5000", tls="insecure", req_per_sec=5, req_concurrent=3)
    path = tmp_path / "conf" / "registries.json"
    old_umask = os.umask(0o022)
    try:
        config.save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = ClientConfig.load(path)
    assert loaded.get("docker.io").credential == Credential(username="alice", password="s3cret")
    hub = loaded.get("registry-1.docker.io")
    assert hub.credential is not None
    assert hub.credential.username == "alice"
    assert loaded.get("r.test:5000").tls is TLSMode.INSECURE
    assert loaded.get("r.test:5000").req_concurrent == 3
    assert loaded.logout("docker.io") is True
    assert loaded.get("docker.io").credential is None


def test_missing_config_is_empty(tmp_path: Path) -> None:
    assert ClientConfig.load(tmp_path / "nope.json").registries == {}


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "registries.json"
    path.write_text(json.dumps({"registries": {"r.test": {"name": "r.test", "tsl": "disabled"}}}))
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'registries.r.test.tsl'"):
        ClientConfig.load(path)


def test_invalid_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "registries.json"
    path.write_text(json.dumps({"registries": {"r.test": {"name": "r.test", "tls": "maybe"}}}))
    with pytest.raises(ConfigError, match=r"registries\.r\.test\.tls"):
        ClientConfig.load(path)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _docker_config(tmp_path: Path, auths: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths, "credsStore": "desktop"}))
    return path


def test_docker_config_auths_are_read(tmp_path: Path) -> None:
    path = _docker_config(
        tmp_path,
        {
            "https://index.docker.io/v1/": {
                "auth": base64.b64encode(b"hub:pw:with:colons").decode()
            },
            "r.test:5000": {"username": "bob", "password": "pw"},
            "https://ghcr.io": {"auth": _b64(b"x:"), "identitytoken": "rt"},
            "empty.test": {},
            "broken.test": {"auth": "not base64!"},
        },
    )
    found = docker_credentials(path)
    assert found["docker.io"] == Credential(username="hub", password="pw:with:colons")
    assert found["r.test:5000"] == Credential(username="bob", password="pw")
    assert found["ghcr.io"].identity_token == "rt"
    assert "empty.test" not in found
    assert "broken.test" not in found
    assert docker_credentials(tmp_path / "missing.json") == {}


def test_our_credentials_come_before_dockers(tmp_path: Path) -> None:
    docker = {
        "r.test": Credential(username="docker", password="d"),
        "s.test": Credential(username="docker", password="d"),
    }
    config = ClientConfig()
    config.login("r.test", "ours", "o")
    assert resolve(config, "r.test", docker).credential == Credential(username="ours", password="o")
    fallback = resolve(config, "s.test", docker).credential
    assert fallback == Credential(username="docker", password="d")
    assert resolve(config, "t.test", docker).credential is None
