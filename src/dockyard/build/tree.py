"""The files of stacked layers, as the image spec's layer rules make them (image-spec
layer.md, "Whiteouts"): a later layer's entry replaces an earlier one at the same path; a
non-directory replaces a directory with everything under it; `.wh.NAME` hides NAME and
everything under it, `.wh..wh..opq` hides everything under its directory, and both apply only
to lower layers (entries of the same layer stay, whatever their order in the tar stream).

Metadata only, unless a caller stores data in an entry: a tree of a large image costs a few
hundred bytes per path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dockyard.build.entries import Entry, Kind, clean_path, parent_of
from dockyard.build.errors import ContentInvalid

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_HOPS = 40
"""Symlinks followed in one lookup before it counts as a loop (Linux's limit)."""


@dataclass(slots=True)
class Node:
    """An entry and the layer (0 is the lowest) it comes from."""

    entry: Entry
    layer: int


class Tree:
    """Paths to their top-most entries, with each directory's children for listing."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._children: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, path: str) -> bool:
        return path in self._nodes

    def node(self, path: str) -> Node | None:
        """The node at the clean `path`, links not followed."""
        return self._nodes.get(path)

    def apply(self, entry: Entry, layer: int) -> bool:
        """Stack `entry` of `layer` on the tree: a whiteout hides lower entries, anything else
        is put. True when the entry was put (False for a whiteout)."""
        directory, _, name = entry.path.rpartition("/")
        if name == OPAQUE:
            self.hide(directory, layer, keep_top=True)
            return False
        if name.startswith(WHITEOUT):
            if not name.startswith(WHITEOUT + WHITEOUT):  # other .wh..wh.* are aufs internals
                self.hide(f"{directory}/{name[len(WHITEOUT) :]}".lstrip("/"), layer)
            return False
        self.put(entry, layer)
        return True

    def put(self, entry: Entry, layer: int) -> None:
        """Make `entry` the one at its path; a non-directory drops what was under the path."""
        path = entry.path
        if entry.kind != Kind.DIR:
            for child in list(self._children.get(path, ())):
                self._drop(child, layer + 1)
        self._nodes[path] = Node(entry, layer)
        while path:
            parent = parent_of(path)
            siblings = self._children.setdefault(parent, set())
            if path in siblings:
                break
            siblings.add(path)
            path = parent

    def hide(self, path: str, layer: int, *, keep_top: bool = False) -> None:
        """Hide `path` and everything under it that comes from layers below `layer`
        (`keep_top`: only what is under it, as an opaque directory does)."""
        if keep_top:
            for child in list(self._children.get(path, ())):
                self._drop(child, layer)
        else:
            self._drop(path, layer)

    def _drop(self, path: str, below: int) -> None:
        for child in list(self._children.get(path, ())):
            self._drop(child, below)
        node = self._nodes.get(path)
        if node is not None and node.layer < below:
            del self._nodes[path]
        if path not in self._nodes and not self._children.get(path):
            self._children.pop(path, None)
            siblings = self._children.get(parent_of(path))
            if siblings is not None:
                siblings.discard(path)

    def under(self, top: str = "") -> Iterator[str]:
        """Every path under `top` (not `top` itself), in sorted order, depth first."""
        for child in sorted(self._children.get(top, ())):
            if child in self._nodes:
                yield child
            yield from self.under(child)

    def resolve(self, path: str, *, follow: bool = True) -> str:
        """The clean path `path` names once symlinks on the way (and at the end, with `follow`)
        are followed inside the root: `..` stops at the root, absolute targets start from it.
        `ContentInvalid` after `MAX_HOPS` links (a loop)."""
        todo = [part for part in reversed(path.split("/")) if part not in ("", ".")]
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop()
            if part == "..":
                if done:
                    done.pop()
                continue
            here = "/".join([*done, part])
            node = self._nodes.get(here)
            if node is not None and node.entry.kind == Kind.SYMLINK and (todo or follow):
                hops += 1
                if hops > MAX_HOPS:
                    raise ContentInvalid(f"/{clean_path(path)}: too many symlinks (a loop?)")
                target = node.entry.link
                if target.startswith("/"):
                    done = []
                todo.extend(part for part in reversed(target.split("/")) if part not in ("", "."))
                continue
            done.append(part)
        return "/".join(done)
