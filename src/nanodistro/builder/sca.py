"""Automatic provides/depends of a built package ("SCA", melange pkg/sca/sca.go ``Analyze``).

SCA reads the package's in-memory entries (read once, without following links, by
``package.read_output``), never the output directory: a build may leave links to host files
there and nothing here may read through them. Links are resolved only among the entries of the
packages of this build (the package and its siblings), as they will sit in an installed root.

Generators, in melange's order (reference §7.6): shared objects (ELF ``PT_INTERP``,
``DT_NEEDED``, ``DT_SONAME``, ``.so`` symlinks), commands (``cmd:``), pkg-config (``pc:``),
python (``python-3.X-base``), ruby (``ruby-X.Y``), shebangs. Options ``no-provides``/
``no-depends``/``no-commands`` drop the matching results. Runtime deps a package provides itself
are removed afterwards, as melange ``removeSelfProvidedDeps`` does. Each dependency kept is
traced in ``ScaResult.origins`` to the paths that caused it.

Not done (melange does): ``so-ver:`` provides (its versioned-shlib feature is behind
``MELANGE_VERSIONED_SHLIB_DEPENDS``), ``man-db``/``texinfo`` for ``-doc`` packages, the Go
FIPS ``openssl-config-fipshardened`` dependency, kernel module deps and the NVIDIA host-library
list.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from nanodistro.formats.tarball import TarEntry

# melange LibDirs / BinDirs: matched against a file's parent directory exactly
_LIB_DIRS = ("lib", "usr/lib", "lib64", "usr/lib64")
_BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin")
_PC_DIRS = (
    "usr/lib/pkgconfig",
    "usr/local/lib/pkgconfig",
    "usr/lib64/pkgconfig",
    "usr/share/pkgconfig",
    "usr/local/share/pkgconfig",
)
# melange generateShbangDeps: every non-link file below these (recursively), whatever its mode
_SHEBANG_PREFIXES = ("usr/bin/", "usr/local/bin/", "usr/local/sbin/")
# melange getShbang: interpreters nothing would provide (they are links or alternatives)
_SHEBANG_IGNORED = frozenset({"python3", "python", "sh", "awk", "luajit"})
_SHEBANG_READ = 80  # melange reads only the first 80 bytes
_SITE_PACKAGES = re.compile(r"^(?:usr/)?(?:local/)?lib/python(3(?:\.\d+)?)/(?:site|dist)-packages$")
# melange generateRubyDeps globs "usr/lib/ruby/gems/[0-9]*.[0-9]*.[0.9]*/gems" (sic: [0.9])
_RUBY_GEMS = "usr/lib/ruby/gems/[0-9]*.[0-9]*.[0.9]*/gems"
_PC_VERSION_OP = re.compile(r"\s*(<=|>=|=|<|>|!=)\s*")
_MAX_LINK_HOPS = 40  # as the kernel's MAXSYMLINKS


@dataclass
class ScaResult:
    """What was found in one package.

    ``origins`` maps each automatic dependency (``cmd:bash``, ``so:libfoo.so.2``) to the
    package paths that caused it, with the reason: ``["usr/bin/xzdiff (shebang)"]``.
    """

    provides: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)
    vendored: list[str] = field(default_factory=list)
    needed_sonames: list[str] = field(default_factory=list)
    origins: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScaOptions:
    no_provides: bool = False
    no_depends: bool = False
    no_commands: bool = False


class _Tree:
    """The entries of one package by path, hardlinks resolved to the file they name."""

    def __init__(self, entries: Sequence[TarEntry]) -> None:
        self.by_path = {entry.path: entry for entry in entries}

    def file(self, path: str) -> TarEntry | None:
        """The regular-file entry at ``path`` (through a hardlink), else ``None``."""
        entry = self.by_path.get(path)
        if entry is not None and entry.type == "hardlink":
            target = self.by_path.get(entry.linkname)
            # the hardlink's own mode is the inode's (both were read from the same inode)
            if target is not None and target.type == "file":
                return TarEntry(path, "file", mode=entry.mode, data=target.data)
            return None
        return entry if entry is not None and entry.type == "file" else None


class _Build:
    """The package being analysed plus its siblings, looked up as one installed root."""

    def __init__(self, own: _Tree, siblings: Sequence[_Tree]) -> None:
        self.trees = [own, *siblings]

    def lookup(self, path: str) -> tuple[_Tree, TarEntry] | None:
        for tree in self.trees:
            entry = tree.by_path.get(path)
            if entry is not None:
                return tree, entry
        return None

    def resolve(self, path: str) -> tuple[_Tree, TarEntry] | None:
        """Follow ``path`` through symlinks (in any component) among the entries only, like a
        chroot: ``..`` stops at the root, absolute targets start at it. ``None`` when it leads
        out of the build's entries or loops."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            found = self.lookup("/".join([*done, part]))
            if found is None:
                return None
            _, entry = found
            if entry.type == "symlink":
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    return None
                target = entry.linkname
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            if parts and entry.type != "dir":
                return None
            done.append(part)
        return self.lookup("/".join(done)) if done else None

    def resolve_file(self, link_path: str, target: str) -> tuple[str, TarEntry] | None:
        """The regular file a link at ``link_path`` with text ``target`` ends at."""
        start = (
            target
            if target.startswith("/")
            else posixpath.join(posixpath.dirname(link_path), target)
        )
        found = self.resolve(start)
        if found is None:
            return None
        tree, entry = found
        if entry.type == "hardlink":
            file = tree.file(entry.path)
            return (entry.path, file) if file is not None else None
        return (entry.path, entry) if entry.type == "file" else None


class _Findings:
    def __init__(self) -> None:
        self.provides: set[str] = set()
        self.depends: set[str] = set()
        self.vendored: set[str] = set()
        self.needed: set[str] = set()
        self.origins: dict[str, set[str]] = {}
        self.warnings: list[str] = []

    def depend(self, name: str, path: str, reason: str) -> None:
        self.depends.add(name)
        self.origins.setdefault(name, set()).add(f"{path} ({reason})")


def _elf(data: bytes) -> ELFFile | None:
    if not data.startswith(b"\x7fELF"):
        return None
    try:
        return ELFFile(io.BytesIO(data))
    except (ELFError, ValueError, OSError):
        return None


def _library_version(soname: str) -> str:
    # melange sonameLibver: the part after ".so." when it is only digits and dots, else "0"
    _, sep, tail = soname.partition(".so.")
    if sep and re.fullmatch(r"[0-9.]+", tail):
        return tail
    return "0"


def _ld_so_conf_dirs(trees: Sequence[_Tree]) -> list[str]:
    """Extra library dirs from ``etc/ld.so.conf.d/*.conf`` of every package of the build
    (melange ``getLdSoConfDLibPaths``: regular files only, so a link there is never read)."""
    dirs: list[str] = []
    for tree in trees:
        for path in sorted(tree.by_path):
            if not (path.startswith("etc/ld.so.conf.d/") and path.endswith(".conf")):
                continue
            entry = tree.file(path)
            if entry is None:
                continue
            for line in entry.data.decode("utf-8", "replace").splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("/"):
                    dirs.append(line.strip("/"))
    return dirs


def analyze(
    entries: Sequence[TarEntry],
    *,
    full_version: str,
    options: ScaOptions | None = None,
    siblings: Mapping[str, Sequence[TarEntry]] | None = None,
    declared: Sequence[str] = (),
) -> ScaResult:
    """Scan one package's ``entries`` and return its automatic deps/provides.

    ``siblings`` are the entries of the other packages built from the same recipe (melange's
    ``RelativeNames``), in recipe order: ``.so`` and ``bin`` links are resolved among them.
    ``declared`` are the recipe's runtime dependencies (python/ruby deps are not added when
    the recipe names one, as melange does).
    """
    options = options or ScaOptions()
    own = _Tree(entries)
    build = _Build(own, [_Tree(e) for e in (siblings or {}).values()])
    lib_dirs = set(_LIB_DIRS) | set(_ld_so_conf_dirs(build.trees))
    found = _Findings()

    for entry in sorted(entries, key=lambda e: e.path):
        rel = entry.path
        parent = posixpath.dirname(rel)
        name = posixpath.basename(rel)
        if entry.type == "symlink":
            if ".so" in rel:
                _symlink_so(build, entry, found)
            if parent in _BIN_DIRS:
                target = build.resolve_file(rel, entry.linkname)
                if target is not None and target[1].mode & 0o555 == 0o555:
                    found.provides.add(f"cmd:{name}={full_version}")
            continue
        file = own.file(rel)
        if file is None:
            continue
        elf = _elf(file.data)
        if elf is not None:
            _shared_objects(elf, rel, parent in lib_dirs, found)
        if parent in _BIN_DIRS and file.mode & 0o555 == 0o555:
            found.provides.add(f"cmd:{name}={full_version}")
        if rel.endswith(".pc"):
            _pkgconfig(rel, file.data, parent in _PC_DIRS, full_version, found)
        if rel.startswith(_SHEBANG_PREFIXES):
            interpreter = shebang_interpreter(file.data)
            if interpreter is not None:
                found.depend(f"cmd:{interpreter}", rel, "shebang")
    _python(own, declared, found)
    _ruby(own, declared, found)

    depends = found.depends
    if options.no_commands:
        found.provides = {p for p in found.provides if not p.startswith("cmd:")}
        depends = {d for d in depends if not d.startswith("cmd:")}
    # runtime deps satisfied by the package's own provides are dropped (removeSelfProvidedDeps)
    own_names = {p.split("=", 1)[0] for p in found.provides}
    depends = {d for d in depends if d.split("=", 1)[0] not in own_names}
    if options.no_depends:
        depends = set()
    return ScaResult(
        provides=[] if options.no_provides else sorted(found.provides),
        depends=sorted(depends),
        vendored=sorted(found.vendored),
        needed_sonames=sorted(found.needed),
        origins={d: sorted(found.origins.get(d, ())) for d in sorted(depends)},
        warnings=found.warnings,
    )


def _symlink_so(build: _Build, link: TarEntry, found: _Findings) -> None:
    """melange ``processSymlinkSo``: a link whose path holds ``.so`` depends on the SONAME of
    the library it points at, which may sit in a sibling package (``zlib-dev``'s
    ``libz.so -> libz.so.1.3.1`` lives in ``zlib``) -> ``so:libz.so.1``. melange searches the
    target's basename in the lib dirs of each package of the build; here the link is resolved
    like the loader would (relative to its directory, absolute from the root). A target found
    nowhere in the build gives no dependency rather than an unprovidable one."""
    target = build.resolve_file(link.path, link.linkname)
    reason = "dev symlink" if link.path.endswith(".so") else "so symlink"
    if target is None:
        found.warnings.append(
            f"{link.path} -> {link.linkname}: the target is in no package of this build; "
            "no shared-object dependency recorded"
        )
        return
    elf = _elf(target[1].data)
    soname = _soname(elf) if elf is not None else None
    if not soname:
        # melange: "library lacks SONAME", no dependency
        found.warnings.append(f"{link.path} -> {link.linkname}: the target has no DT_SONAME")
        return
    found.depend(f"so:{soname}", link.path, reason)


def _shared_objects(elf: ELFFile, rel: str, in_lib_dir: bool, found: _Findings) -> None:
    """melange ``generateSharedObjectNameDeps`` for one regular ELF file."""
    name = posixpath.basename(rel)
    interp = _interpreter(elf)
    if interp:
        # the musl loader is a link to libc: depend on the library's name
        dep = posixpath.basename(interp)
        if dep.startswith("ld-musl"):
            dep = dep.replace("ld-musl", "libc.musl", 1)
        found.depend(f"so:{dep}", rel, "PT_INTERP")
    for lib in _needed(elf):
        # melange: only versioned names (".so.") become dependencies
        if ".so." in lib:
            found.needed.add(lib)
            found.depend(f"so:{lib}", rel, "DT_NEEDED")
    # an executable with PT_INTERP is only scanned for a SONAME when named like a library
    # (libc, libcap run as programs too)
    if not interp or ".so." in name or name.endswith(".so"):
        soname = _soname(elf)
        if soname:
            provide = f"so:{soname}={_library_version(soname)}"
            (found.provides if in_lib_dir else found.vendored).add(provide)


def _dynamic(elf: ELFFile) -> DynamicSection | None:
    try:
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                return section
    except (ELFError, ValueError):
        return None
    return None


def _interpreter(elf: ELFFile) -> str | None:
    try:
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                return str(segment.get_interp_name())  # type: ignore[attr-defined]
    except (ELFError, ValueError):
        return None
    return None


def _needed(elf: ELFFile) -> list[str]:
    dynamic = _dynamic(elf)
    if dynamic is None:
        return []
    try:
        return [
            str(tag.needed)  # type: ignore[attr-defined]
            for tag in dynamic.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]
    except (ELFError, ValueError):
        return []


def _soname(elf: ELFFile) -> str | None:
    dynamic = _dynamic(elf)
    if dynamic is None:
        return None
    try:
        for tag in dynamic.iter_tags():
            if tag.entry.d_tag == "DT_SONAME":
                return str(tag.soname)  # type: ignore[attr-defined]
    except (ELFError, ValueError):
        return None
    return None


def shebang_interpreter(head: bytes) -> str | None:
    """The command a ``#!`` line needs, by melange ``getShbang``'s rules: the first word, or
    for exactly ``/usr/bin/env X`` (or ``/usr/bin/env -S X ...``) the word after; other
    ``env`` forms, and the ignored ``sh``/``python3``/``python``/``awk``/``luajit``, give
    nothing. Only the first 80 bytes are looked at."""
    head = head[:_SHEBANG_READ]
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None
    command = words[0]
    if command == "/usr/bin/env":
        if len(words) == 2:
            command = words[1]
        elif len(words) >= 3 and words[1] == "-S" and not words[2].startswith("-"):
            command = words[2]
        else:
            return None  # melange: an error, logged, no dependency
    base = posixpath.basename(command)
    if not base or base in _SHEBANG_IGNORED:
        return None
    return base


def _python(own: _Tree, declared: Sequence[str], found: _Findings) -> None:
    if any(d.startswith("python") for d in declared):
        return  # melange: the recipe already names its python
    for path in sorted(own.by_path):
        if own.by_path[path].type != "dir":
            continue
        match = _SITE_PACKAGES.match(path)
        if match:
            version = match.group(1)
            # Debian's version-less python3/dist-packages: any python3 will do
            dep = f"python-{version}-base" if "." in version else "python3"
            found.depend(dep, path, "python site-packages")


def _ruby(own: _Tree, declared: Sequence[str], found: _Findings) -> None:
    """melange ``generateRubyDeps``: gems under ``usr/lib/ruby/gems/X.Y.Z/gems`` need
    ``ruby-X.Y`` (the first match in walk order), unless the recipe names a ruby."""
    if any(d.startswith("ruby-") or d == "ruby" for d in declared):
        return
    matches = sorted(
        p
        for p, e in own.by_path.items()
        if fnmatch.fnmatchcase(p, _RUBY_GEMS) and p.count("/") == _RUBY_GEMS.count("/")
    )
    if not matches:
        return
    version = posixpath.basename(posixpath.dirname(matches[0]))
    version = version[: version.rfind(".")] if "." in version else version
    if version:
        found.depend(f"ruby-{version}", matches[0], "ruby gems")


def _pkgconfig(rel: str, data: bytes, provided: bool, full_version: str, found: _Findings) -> None:
    """melange ``generatePkgConfigDeps``: ``pc:<name>=<ver>`` for a ``.pc`` file in a
    pkg-config dir (vendored elsewhere) and ``pc:<id>`` for each Requires(.private/.internal)."""
    name = posixpath.basename(rel)[: -len(".pc")]
    if not provided:
        found.vendored.add(f"pc:{name}={full_version}")
        return
    found.provides.add(f"pc:{name}={full_version}")
    variables: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" in line and (":" not in line or line.index("=") < line.index(":")):
            key, _, value = line.partition("=")
            variables[key.strip()] = value.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in ("Requires", "Requires.private", "Requires.internal"):
            continue
        value = re.sub(r"\$\{([^}]+)\}", lambda m: variables.get(m.group(1), ""), value)
        # "a >= 1.0, b c" -> ids a, b, c (version constraints dropped, as melange does)
        value = _PC_VERSION_OP.sub(lambda m: m.group(1), value)
        for token in re.split(r"[,\s]+", value):
            if not token:
                continue
            dep = re.split(r"<=|>=|!=|=|<|>", token)[0]
            if dep:
                found.depend(f"pc:{dep}", rel, f"pkg-config {key.strip()}")
