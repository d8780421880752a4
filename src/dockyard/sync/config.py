"""The sync configuration: regsync's YAML (`version`, `creds`, `defaults`, `sync`), read strictly.

regsync's own files run unchanged: every key regsync documents for what Dockyard does is read
with regsync's meaning and defaults (see `SyncEntry`), `x-*` keys are user extensions (handy for
YAML anchors) and ignored, anchors, aliases and merge keys work. Unlike regsync, which ignores
what it does not know, an unknown or misspelled key is an error naming the key, the file and
the line; so are values of the wrong type, and regsync settings Dockyard does not implement
(credential helpers, mirrors, hooks, backups...), each named.

Templates (`{{file "..."}}`, `{{env "..."}}`, see `sync_template`) are expanded where regsync
expands them: `registry`, `hostname`, `user`, `pass` and `regcert` of `creds`, and `source`,
`referrerSource`, `target` and `referrerTarget` of `sync` entries (in that order, each seeing
the ones before it as `.Sync.Source`, ...).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dockyard.sync.creds import CredsReader
from dockyard.sync.entries import EntryReader
from dockyard.sync.keys import TOP_KEYS
from dockyard.sync.model import SUPPORTED_VERSION, SyncConfig, SyncConfigError, Where


def load_sync_config(path: Path | str) -> SyncConfig:
    """Read and check the sync config at `path` (`-`: standard input)."""
    if str(path) == "-":
        import sys

        return parse_sync_config(sys.stdin.read(), "<stdin>")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SyncConfigError(
            f"{path}: cannot read the sync config: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise SyncConfigError(f"{path}: the sync config is not UTF-8 text") from None
    return parse_sync_config(text, str(path))


def parse_sync_config(text: str, name: str = "<config>") -> SyncConfig:
    """Check the sync config `text` (read from the file `name`, for messages)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Where(name, mark.line + 1, mark.column + 1) if mark is not None else None
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise SyncConfigError(f"not valid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise SyncConfigError(f"{name}: not valid YAML: {exc}") from None
    return _Reader(name).config(root)


class _Reader(CredsReader, EntryReader):
    """Turns composed YAML nodes into config values, naming the place of anything wrong."""

    def config(self, root: yaml.Node | None) -> SyncConfig:
        if root is None or self.is_null(root):
            return SyncConfig(self.file)
        keys = self.mapping(root, "", TOP_KEYS)
        version = SUPPORTED_VERSION
        if "version" in keys:
            version = self.integer(keys["version"], "version") or SUPPORTED_VERSION
            if version > SUPPORTED_VERSION:
                self.fail(
                    keys["version"],
                    "version",
                    f"version {version} is not supported (this is version {SUPPORTED_VERSION})",
                )
        creds = self.creds(keys.get("creds"))
        defaults = self.defaults(keys.get("defaults"))
        entries = self.entries(keys.get("sync"), defaults)
        return SyncConfig(self.file, version, creds, defaults, entries)
