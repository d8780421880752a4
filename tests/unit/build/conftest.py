"""Fixtures of the build tests: images built in the test as OCI layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.client.layout import LayoutTarget
from support.ocilayout import Layout
from unit.build.images import Images


@pytest.fixture
def images(tmp_path: Path) -> Images:
    layout = Layout(tmp_path / "layout")
    return Images(layout, LayoutTarget(layout.path))
