"""An in-memory root filesystem: the image is assembled here, then walked into layer tars.

Paths are relative and "/"-separated. Lookups resolve symlinks like a chroot would (``lib``
-> ``usr/lib`` is followed; nothing can lead outside the root), which is how apko's in-memory
filesystem treats packages that ship ``lib/…`` into a merged-usr layout.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, replace

from nanodistro.errors import ImageError
from nanodistro.formats.tarball import TarEntry, sort_key

_MAX_LINKS = 40


@dataclass
class Node:
    entry: TarEntry  # path field holds the node's own path
    owner: str | None = None  # package name; None for files the assembler synthesized


class RootFS:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    # ---- lookups ------------------------------------------------------------------------

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """Canonical path inside the root ("" is the root itself)."""
        parts = [p for p in path.split("/") if p and p != "."]
        stack: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if stack:
                    stack.pop()
                continue
            candidate = "/".join([*stack, part])
            node = self.nodes.get(candidate)
            if node is not None and node.entry.type == "symlink" and (parts or follow_last):
                hops += 1
                if hops > _MAX_LINKS:
                    raise ImageError(f"too many levels of symbolic links resolving {path!r}")
                target = node.entry.linkname
                if target.startswith("/"):
                    stack = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            stack.append(part)
        return "/".join(stack)

    def get(self, path: str, *, follow: bool = True) -> Node | None:
        return self.nodes.get(self.resolve(path, follow_last=follow))

    def is_dir(self, path: str) -> bool:
        if self.resolve(path) == "":
            return True
        node = self.get(path)
        return node is not None and node.entry.type == "dir"

    def read(self, path: str) -> bytes | None:
        node = self.get(path)
        if node is None or node.entry.type not in ("file", "hardlink"):
            return None
        if node.entry.type == "hardlink":
            return self.read(node.entry.linkname)
        return node.entry.data

    # ---- mutations ----------------------------------------------------------------------

    def mkdir_parents(self, resolved: str, *, mtime: int = 0) -> None:
        """Create missing directories above ``resolved`` (already canonical)."""
        parent = posixpath.dirname(resolved)
        missing: list[str] = []
        while parent:
            canonical = self.resolve(parent)
            node = self.nodes.get(canonical)
            if node is not None:
                if node.entry.type != "dir":
                    raise ImageError(f"{parent!r} exists and is not a directory")
                break
            missing.append(canonical)
            parent = posixpath.dirname(canonical)
        for directory in reversed(missing):
            self.nodes[directory] = Node(TarEntry(directory, "dir", mode=0o755, mtime=mtime))

    def put(self, entry: TarEntry, *, owner: str | None = None, follow_last: bool = False) -> str:
        """Place ``entry`` (its path resolved through symlinks); returns the canonical path."""
        resolved = self.resolve(entry.path, follow_last=follow_last or entry.type == "dir")
        if not resolved:
            return ""  # the root itself: apko keeps its own root directory
        self.mkdir_parents(resolved, mtime=entry.mtime)
        existing = self.nodes.get(resolved)
        if existing is not None and existing.entry.type == "dir" and entry.type != "dir":
            raise ImageError(f"cannot replace directory /{resolved} with a {entry.type}")
        stored = replace(entry, path=resolved)
        if entry.type == "hardlink":
            target = self.resolve(entry.linkname, follow_last=False)
            target_node = self.nodes.get(target)
            if target_node is None or target_node.entry.type not in ("file", "hardlink"):
                raise ImageError(f"hardlink /{resolved} -> /{entry.linkname}: no such file")
            if target_node.entry.type == "hardlink":
                target = target_node.entry.linkname
            stored = replace(stored, linkname=target)
        self.nodes[resolved] = Node(stored, owner)
        return resolved

    def remove(self, path: str) -> None:
        self.nodes.pop(self.resolve(path, follow_last=False), None)

    def walk(self) -> Iterator[Node]:
        """Every node in Go ``fs.WalkDir`` order (depth first, siblings by name bytes)."""
        for path in sorted(self.nodes, key=sort_key):
            yield self.nodes[path]

    def children(self, path: str) -> list[str]:
        prefix = self.resolve(path) + "/"
        if prefix == "/":
            prefix = ""
        return sorted(
            (p for p in self.nodes if p.startswith(prefix) and p != prefix.rstrip("/")),
            key=sort_key,
        )
