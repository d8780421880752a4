"""Settings: sources in order, unknown keys refused with their source named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dockyard.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.listen == "127.0.0.1:5000"
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 5000)
    assert settings.data == Path("./data")


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "dockyard.yaml"
    config.write_text("listen: 127.0.0.1:6000\nservice: from-file\nworkers: 2\n")
    monkeypatch.setenv("DOCKYARD_SERVICE", "from-env")
    settings = load_settings(config, workers=3)
    assert settings.listen == "127.0.0.1:6000"
    assert settings.service == "from-env"
    assert settings.workers == 3


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yaml"
    config.write_text("lisen: 127.0.0.1:6000\n")
    with pytest.raises(ConfigError, match=rf"unknown setting 'lisen' in {config}"):
        load_settings(config)


def test_unknown_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_DATABSE_URL", "sqlite://")
    with pytest.raises(ConfigError, match="unknown setting 'databse_url' in environment variable"):
        load_settings()


def test_invalid_value_names_key_and_source() -> None:
    with pytest.raises(ConfigError, match=r"workers \(--workers\)"):
        load_settings(workers=0)


def test_client_side_variables_are_not_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dockyard catalog`/`mirror` read DOCKYARD_SERVER, the client verbs DOCKYARD_CONFIG:
    commands that also load the server's settings must not trip over them."""
    monkeypatch.setenv("DOCKYARD_SERVER", "http://127.0.0.1:5000")
    monkeypatch.setenv("DOCKYARD_CONFIG", "/tmp/somewhere")
    assert load_settings().listen == "127.0.0.1:5000"


@pytest.mark.parametrize("value", ["5001", ":5001", "127.0.0.1:", "127.0.0.1:0", "h:70000", "h:x"])
def test_blob_listen_must_be_host_and_port(value: str) -> None:
    with pytest.raises(ConfigError, match=r"blob_listen \(--blob-listen\).*HOST:PORT"):
        load_settings(blob_listen=value)
    settings = load_settings(blob_listen="127.0.0.1:5001")
    assert settings.blob_listen == "127.0.0.1:5001"
    assert settings.blob_address == ("127.0.0.1", 5001)
    assert settings.blob_base_url == "http://127.0.0.1:5001"
    assert load_settings().blob_address is None


def test_blob_url_must_be_an_http_url() -> None:
    with pytest.raises(ConfigError, match=r"blob_url.*not an http:// or https:// URL"):
        load_settings(blob_url="blobs.example.com")
    assert (
        load_settings(blob_url="https://blobs.example.com").blob_url == "https://blobs.example.com"
    )


def test_index_platforms_and_their_list_go_together() -> None:
    settings = Settings(index_platforms="list", index_platform_list="linux/amd64, linux/arm64")
    assert settings.index_platform_list == ["linux/amd64", "linux/arm64"]
    for wrong in (
        {"index_platforms": "list"},
        {"index_platform_list": ["linux/amd64"]},
        {"index_platforms": "list", "index_platform_list": ["linux"]},
        {"index_platforms": "some"},
    ):
        with pytest.raises(ValidationError):
            Settings(**wrong)


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_TRUSTED_PROXIES", "10.0.0.0/8, ::1 192.0.2.1")
    assert load_settings(None).trusted_proxies == ["10.0.0.0/8", "::1", "192.0.2.1"]
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an address or network"):
        Settings(trusted_proxies=["proxy.example"])
