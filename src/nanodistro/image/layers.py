"""Deterministic layer tars from an assembled root (apko pkg/build/tarball.go, layers.go).

Entries come in Go ``fs.WalkDir`` order with the root skipped; owner names come from the image's
own ``etc/passwd``/``etc/group``; mtimes are whatever the root holds (package build dates for
package files, SOURCE_DATE_EPOCH for synthesized ones). The gzip stream has no time or name, so
the same root always gives the same diffID and digest.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace

from nanodistro.formats import pgzip
from nanodistro.formats.installed_db import format_installed
from nanodistro.formats.oci import MEDIA_LAYER_GZIP, Descriptor
from nanodistro.formats.tarball import TarEntry, write_tar
from nanodistro.image.accounts import owner_names
from nanodistro.image.install import INSTALLED_PATH, AssembledRoot
from nanodistro.image.rootfs import Node

# umoci and apko compress layers with klauspost/pgzip's default level, a fast matcher whose
# output is about zlib -1's size (bench_image: umoci 7.52 MB, zlib -1 7.39 MB, -6 6.91 MB).
# Level 1 costs a third of level 6's CPU for layers ~5% bigger (measured on /usr/bin).
# Compressed on all cores in pgzip's fixed blocks: the digest never depends on the thread count.
GZIP_LEVEL = 1


@dataclass
class Layer:
    gz: bytes
    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of the gzip blob
    tar_size: int
    packages: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.gz)

    def descriptor(self) -> Descriptor:
        return Descriptor(MEDIA_LAYER_GZIP, self.digest, self.size)


def _named(entry: TarEntry, users: dict[int, str], groups: dict[int, str]) -> TarEntry:
    # as apko: names only from the image's own passwd/group (numeric owners otherwise)
    uname = users.get(entry.uid, "")
    gname = groups.get(entry.gid, "")
    return replace(entry, uname=uname, gname=gname, pax_checksum=None)


def _tar_entries(
    nodes: list[Node], users: dict[int, str], groups: dict[int, str], lookup: dict[str, Node]
) -> list[TarEntry]:
    """Layer entries; a hardlink whose target comes later in walk order is written as the file
    (and the target then as a link to it), so every reader finds link targets first."""
    entries: list[TarEntry] = []
    emitted: dict[str, str] = {}  # canonical file path -> path it was first written under
    for node in nodes:
        entry = _named(node.entry, users, groups)
        if entry.type == "hardlink":
            target = entry.linkname
            if target in emitted:
                entry = replace(entry, linkname=emitted[target])
            else:
                source = lookup.get(target)
                data = source.entry.data if source is not None else b""
                meta = source.entry if source is not None else entry
                entry = replace(
                    _named(meta, users, groups), path=entry.path, type="file", data=data
                )
                emitted[target] = entry.path
        elif entry.type == "file":
            if entry.path in emitted:
                entry = replace(entry, type="hardlink", linkname=emitted[entry.path], data=b"")
            else:
                emitted[entry.path] = entry.path
        entries.append(entry)
    return entries


def make_layer(entries: list[TarEntry], packages: list[str] | None = None) -> Layer:
    tar = write_tar(entries, end_of_archive=True)
    compressed = pgzip.compress_hashed(tar, level=GZIP_LEVEL)
    return Layer(
        gz=compressed.gz,
        diff_id="sha256:" + compressed.input_sha256,
        digest="sha256:" + compressed.gz_sha256,
        tar_size=len(tar),
        packages=list(packages or []),
    )


def single_layer(root: AssembledRoot) -> list[Layer]:
    users, groups = owner_names(root.fs)
    nodes = list(root.fs.walk())
    entries = _tar_entries(nodes, users, groups, root.fs.nodes)
    return [make_layer(entries, root.package_names())]


def _origin_groups(root: AssembledRoot, budget: int) -> list[list[str]]:
    """Package groups by origin (merged along ``replaces``), biggest first, ``budget-1`` kept."""
    packages = {p.apk.name: p for p in root.packages}
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    origin_of = {name: p.apk.info.origin or name for name, p in packages.items()}
    for name, origin in origin_of.items():
        parent.setdefault(origin, origin)
        union(name, origin)
    for name, package in packages.items():
        for replaced in package.apk.info.replaces:
            other = replaced.split("=", 1)[0].split("<", 1)[0].split(">", 1)[0]
            if other in packages:
                union(name, other)
    groups: dict[str, list[str]] = {}
    for name in packages:
        groups.setdefault(find(name), []).append(name)

    def size(members: list[str]) -> int:
        return sum(packages[m].apk.info.installed_size or 0 for m in members)

    ordered = sorted(groups.values(), key=lambda g: (-size(g), tuple(sorted(g, reverse=True))))
    ordered = [sorted(g) for g in ordered]
    keep = max(budget - 1, 0)
    return ordered[:keep]


def origin_layers(root: AssembledRoot, budget: int) -> list[Layer]:
    """``layering: {strategy: origin, budget: N}``: at most N layers, unowned files on top."""
    groups = _origin_groups(root, budget)
    users, groups_names = owner_names(root.fs)
    layer_of: dict[str, int] = {}
    for index, members in enumerate(groups):
        for name in members:
            layer_of[name] = index
    top = len(groups)
    buckets: list[list[Node]] = [[] for _ in range(top + 1)]
    present: list[set[str]] = [set() for _ in range(top + 1)]
    nodes = root.fs.nodes
    records = {p.apk.name: p.record for p in root.packages}
    for node in root.fs.walk():
        index = layer_of.get(node.owner or "", top)
        if node.entry.type == "dir" and node.owner is None:
            index = top
        path = node.entry.path
        if path == INSTALLED_PATH:
            for group_index, members in enumerate(groups):
                partial = format_installed(records[m] for m in members if m in records).encode()
                _add_with_parents(buckets, present, group_index, nodes, path)
                buckets[group_index][-1] = Node(replace(node.entry, data=partial), node.owner)
        _add_with_parents(buckets, present, index, nodes, path)
    layers = []
    for index, bucket in enumerate(buckets):
        if not bucket and index != top:
            continue
        members = groups[index] if index < top else []
        entries = _tar_entries(bucket, users, groups_names, nodes)
        layers.append(make_layer(entries, members))
    return layers


def _add_with_parents(
    buckets: list[list[Node]],
    present: list[set[str]],
    index: int,
    nodes: dict[str, Node],
    path: str,
) -> None:
    if path in present[index]:
        return
    missing = []
    parent = posixpath.dirname(path)
    while parent and parent not in present[index]:
        missing.append(parent)
        parent = posixpath.dirname(parent)
    for directory in reversed(missing):
        node = nodes.get(directory)
        if node is not None:
            buckets[index].append(node)
            present[index].add(directory)
    buckets[index].append(nodes[path])
    present[index].add(path)


def build_layers(root: AssembledRoot, *, strategy: str = "", budget: int = 0) -> list[Layer]:
    if strategy or budget:
        return origin_layers(root, max(budget, 1))
    return single_layer(root)
