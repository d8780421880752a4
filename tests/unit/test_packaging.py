"""Packaging: the build floor can build the project, the license is shipped, package data
names real files, and requirements/*.txt pin, with hashes, everything pyproject.toml asks for
(a dependency added without `make lock` fails here, not on a fresh machine)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]
GROUPS: dict[str, list[str]] = PYPROJECT["dependency-groups"]


@dataclass
class Pin:
    version: Version
    marker: str | None
    hashes: list[str] = field(default_factory=list)


def read_lock(name: str) -> dict[str, Pin]:
    """requirements/NAME: each pinned distribution with its version, marker and hashes."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        text = line.strip().removesuffix("\\").strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("--hash="):
            assert current is not None, f"{name}: a hash before any requirement"
            current.hashes.append(text.removeprefix("--hash="))
            continue
        requirement = Requirement(text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{name}: {text} is not an exact pin"
        current = Pin(Version(specifier.version), str(requirement.marker or "") or None)
        pins[canonicalize_name(requirement.name)] = current
    return pins


def assert_pinned(requirements: list[str], lock: str) -> None:
    """Every requirement has a pin in `lock` that satisfies it."""
    pins = read_lock(lock)
    for text in requirements:
        requirement = Requirement(text)
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{text} is not in requirements/{lock}: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"requirements/{lock} pins {requirement.name}=={pin.version}, outside {text}: "
            "run `make lock`"
        )


def test_the_license_file_is_the_license_the_metadata_names() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_build_floor_reads_an_spdx_license() -> None:
    # PEP 639's `license = "<SPDX expression>"` and `license-files`: setuptools 77 and later;
    # 76 and earlier refuse the project ("project.license must be valid exactly by one
    # definition"), so a floor below 77 lets a build pick a setuptools that cannot build it.
    (setuptools,) = [
        Requirement(text)
        for text in PYPROJECT["build-system"]["requires"]
        if Requirement(text).name == "setuptools"
    ]
    assert not setuptools.specifier.contains("76.1.0")
    assert setuptools.specifier.contains("77.0.3")


def test_package_data_names_files_that_exist() -> None:
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        folder = ROOT / "src" / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"package data {package}:{pattern} matches nothing"


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        ("runtime.txt", PROJECT["dependencies"]),
        ("test.txt", [*PROJECT["dependencies"], *GROUPS["test"], *GROUPS["lint"]]),
        ("build.txt", ["pip", *PYPROJECT["build-system"]["requires"]]),
        ("uv.txt", GROUPS["lock"]),
    ],
)
def test_each_lock_pins_what_pyproject_asks_for(lock: str, requirements: list[str]) -> None:
    assert_pinned(requirements, lock)


@pytest.mark.parametrize("lock", ["runtime.txt", "test.txt", "build.txt", "uv.txt"])
def test_every_pin_has_hashes(lock: str) -> None:
    # pip's --require-hashes needs them; they also tie a version to the files CI installed.
    for name, pin in read_lock(lock).items():
        assert pin.hashes, f"requirements/{lock}: {name} has no hash"
        assert all(digest.startswith("sha256:") for digest in pin.hashes)


def test_tests_run_with_the_versions_the_server_runs_with() -> None:
    runtime, test = read_lock("runtime.txt"), read_lock("test.txt")
    assert {name: test[name].version for name in runtime} == {
        name: pin.version for name, pin in runtime.items()
    }


def test_checkers_are_pinned_exactly_in_pyproject() -> None:
    # A new ruff or mypy release changes their verdicts: upgrading one is a change of its own.
    for text in GROUPS["lint"]:
        (specifier,) = Requirement(text).specifier
        assert specifier.operator == "==", f"{text}: pin the checker exactly"


def test_runtime_installs_no_test_tools() -> None:
    runtime = read_lock("runtime.txt")
    for tool in ("pytest", "hypothesis", "ruff", "mypy", "schemathesis"):
        assert tool not in runtime, f"`make run` would install {tool}"
