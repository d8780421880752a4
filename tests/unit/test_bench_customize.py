"""bench/customize.py starts: its imports (tests/support, the anchor, Dockyard's builder
through the build process) resolve and its command line parses, without root or a mirror."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_customize_bench_explains_its_options() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "customize.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--rounds" in done.stdout
    assert "--sets" in done.stdout


def test_the_build_process_imports_the_builder() -> None:
    argv = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCH)!r}); "
            "import customize_build; print(customize_build.SUFFIX)"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "custom"
