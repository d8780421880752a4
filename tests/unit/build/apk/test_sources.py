"""Alpine sources come from the apk_sources setting, per release; the site's package layer
takes Alpine bases to apk and other bases to apt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.app import package_layer
from dockyard.build.apk.install import ApkPackages
from dockyard.build.apk.sources import release_of, repositories_for
from dockyard.config import ApkSource, ConfigError, load_settings


def test_the_release_folder_is_filled_in_from_the_base() -> None:
    source = ApkSource(url="https://mirror.example/alpine/v{version}/", keys=Path("/keys"))
    found = repositories_for([source], "alpine", "3.20.3")
    assert [r.url for r in found] == [
        "https://mirror.example/alpine/v3.20/main",
        "https://mirror.example/alpine/v3.20/community",
    ]
    assert found[0].index_url("aarch64").endswith("/v3.20/main/aarch64/APKINDEX.tar.gz")
    assert repositories_for([source], "wolfi", "20230201") == []
    assert release_of("3.21.0_alpha20240807") == "3.21"


def test_apk_sources_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    value = [{"url": "https://mirror.example/alpine/v{version}", "keys": str(tmp_path)}]
    monkeypatch.setenv("DOCKYARD_APK_SOURCES", json.dumps(value))
    monkeypatch.setenv("DOCKYARD_DATA", str(tmp_path / "data"))
    settings = load_settings()
    layers = package_layer(settings)
    assert layers is not None
    assert isinstance(layers.apk, ApkPackages)
    assert layers.apk.sources[0].repositories == ["main", "community"]


def test_a_misspelled_apk_source_key_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    value = [{"url": "https://mirror.example/alpine/v{version}", "key": str(tmp_path)}]
    monkeypatch.setenv("DOCKYARD_APK_SOURCES", json.dumps(value))
    with pytest.raises(ConfigError, match="apk_sources"):
        load_settings()
