"""The repository's documents point only at files that are in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `NAME.md` or `path/to/NAME.md` written in a document (not a URL's path)
MENTION = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w.-]+\.md)\b")


def _documents() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [ROOT / line for line in listed.stdout.split()]


def test_documents_name_only_files_in_the_repository() -> None:
    documents = _documents()
    assert ROOT / "ARCHITECTURE.md" in documents
    missing = []
    for document in documents:
        for mention in MENTION.findall(document.read_text()):
            candidates = [document.parent / mention, ROOT / mention]
            if not any(path.exists() for path in candidates):
                missing.append(f"{document.relative_to(ROOT)}: {mention}")
    assert missing == []
