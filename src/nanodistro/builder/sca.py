"""Automatic provides/depends of a built package ("SCA", melange pkg/sca/sca.go ``Analyze``).

Generators, in melange's order (reference §7.6): shared objects (ELF ``PT_INTERP``,
``DT_NEEDED``, ``DT_SONAME``, ``.so`` symlinks), commands (``cmd:``), pkg-config (``pc:``),
python (``python-3.X-base``), shebangs. Options ``no-provides``/``no-depends``/``no-commands``
drop the matching results. Runtime deps a package provides itself are removed afterwards, as
melange ``removeSelfProvidedDeps`` does.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

_LIB_DIRS = ("lib", "usr/lib", "lib64", "usr/lib64")
_BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin")
_PC_DIRS = (
    "usr/lib/pkgconfig",
    "usr/local/lib/pkgconfig",
    "usr/lib64/pkgconfig",
    "usr/share/pkgconfig",
    "usr/local/share/pkgconfig",
)
_SHEBANG_DIRS = ("usr/bin", "usr/local/bin", "usr/local/sbin")
_SITE_PACKAGES = re.compile(r"^(?:usr/)?(?:local/)?lib/python(3(?:\.\d+)?)/(?:site|dist)-packages$")
_PC_VERSION_OP = re.compile(r"\s*(<=|>=|=|<|>|!=)\s*")


@dataclass
class ScaResult:
    """What was found in one package directory."""

    provides: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)
    vendored: list[str] = field(default_factory=list)
    needed_sonames: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScaOptions:
    no_provides: bool = False
    no_depends: bool = False
    no_commands: bool = False


def _elf(path: Path) -> ELFFile | None:
    try:
        with path.open("rb") as handle:
            if handle.read(4) != b"\x7fELF":
                return None
    except OSError:
        return None
    return None if not path.is_file() else _open_elf(path)


def _open_elf(path: Path) -> ELFFile | None:
    try:
        handle = path.open("rb")
        return ELFFile(handle)
    except (ELFError, OSError, ValueError):
        return None


def _library_version(soname: str) -> str:
    # melange: the part after ".so." when it is only digits and dots, else "0"
    _, sep, tail = soname.partition(".so.")
    if sep and re.fullmatch(r"[0-9.]+", tail):
        return tail
    return "0"


def _ld_so_conf_dirs(root: Path) -> list[str]:
    dirs: list[str] = []
    conf = root / "etc/ld.so.conf.d"
    if conf.is_dir():
        for path in sorted(conf.glob("*.conf")):
            for line in path.read_text(errors="replace").splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("/"):
                    dirs.append(line.strip("/"))
    return dirs


def _walk(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(directory, root)
        for name in sorted(
            filenames + [d for d in dirnames if os.path.islink(os.path.join(directory, d))]
        ):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found.append((rel, Path(directory) / name))
    return found


def analyze(root: Path, *, full_version: str, options: ScaOptions | None = None) -> ScaResult:
    """Scan ``root`` (a package's output directory) and return its automatic deps/provides."""
    options = options or ScaOptions()
    provides: set[str] = set()
    depends: set[str] = set()
    vendored: set[str] = set()
    needed: set[str] = set()
    lib_dirs = set(_LIB_DIRS) | set(_ld_so_conf_dirs(root))
    python_versions: set[str] = set()

    for rel, path in _walk(root):
        parent = str(PurePosixPath(rel).parent)
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            # a "libfoo.so" development symlink depends on what it points at (processSymlinkSo)
            if rel.endswith(".so") and parent in lib_dirs:
                link = os.readlink(path)
                target = root / link.lstrip("/") if link.startswith("/") else path.parent / link
                soname = None
                if target.is_file() and not target.is_symlink():
                    elf = _elf(target)
                    if elf is not None:
                        soname = _soname(elf)
                        elf.stream.close()
                depends.add(f"so:{soname or PurePosixPath(link).name}")
            continue
        if not stat.S_ISREG(mode):
            continue
        elf = _elf(path)
        if elf is not None:
            try:
                interp = _interpreter(elf)
                if interp:
                    name = PurePosixPath(interp).name
                    if name.startswith("ld-musl"):
                        name = name.replace("ld-musl", "libc.musl", 1)
                    depends.add(f"so:{name}")
                for lib in _needed(elf):
                    if ".so" in lib:
                        needed.add(lib)
                        depends.add(f"so:{lib}")
                soname = _soname(elf)
                if soname and (not interp or ".so" in PurePosixPath(rel).name):
                    if parent in lib_dirs:
                        provides.add(f"so:{soname}={_library_version(soname)}")
                    else:
                        vendored.add(f"so:{soname}={_library_version(soname)}")
            finally:
                elf.stream.close()
        if parent in _BIN_DIRS and mode & 0o555 == 0o555 and not options.no_commands:
            provides.add(f"cmd:{PurePosixPath(rel).name}={full_version}")
        if parent in _PC_DIRS and rel.endswith(".pc"):
            _pkgconfig(path, full_version, provides, depends)
        if parent in _SHEBANG_DIRS and mode & 0o111:
            interpreter = _shebang(path)
            if interpreter and not options.no_commands:
                depends.add(f"cmd:{interpreter}")
    for directory, dirnames, _ in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        match = _SITE_PACKAGES.match(rel_dir)
        if match:
            python_versions.add(match.group(1))
            dirnames.clear()
    for version in python_versions:
        # Debian's version-less python3/dist-packages: any python3 will do
        depends.add(f"python-{version}-base" if "." in version else "python3")

    if options.no_commands:
        depends = {d for d in depends if not d.startswith("cmd:")}
    # runtime deps satisfied by the package's own provides are dropped (removeSelfProvidedDeps)
    own = {p.split("=", 1)[0] for p in provides}
    depends = {d for d in depends if d.split("=", 1)[0] not in own}
    return ScaResult(
        provides=[] if options.no_provides else sorted(provides),
        depends=[] if options.no_depends else sorted(depends),
        vendored=sorted(vendored),
        needed_sonames=sorted(needed),
    )


def _dynamic(elf: ELFFile) -> DynamicSection | None:
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            return section
    return None


def _interpreter(elf: ELFFile) -> str | None:
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_INTERP":
            return str(segment.get_interp_name())  # type: ignore[attr-defined]
    return None


def _needed(elf: ELFFile) -> list[str]:
    dynamic = _dynamic(elf)
    if dynamic is None:
        return []
    return [
        str(tag.needed)  # type: ignore[attr-defined]
        for tag in dynamic.iter_tags()
        if tag.entry.d_tag == "DT_NEEDED"
    ]


def _soname(elf: ELFFile) -> str | None:
    dynamic = _dynamic(elf)
    if dynamic is None:
        return None
    for tag in dynamic.iter_tags():
        if tag.entry.d_tag == "DT_SONAME":
            return str(tag.soname)  # type: ignore[attr-defined]
    return None


def _shebang(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None
    interpreter = PurePosixPath(words[0]).name
    if interpreter == "env" and len(words) > 1:
        args = [w for w in words[1:] if not w.startswith("-")]
        interpreter = args[0] if args else ""
    return interpreter or None


def _pkgconfig(path: Path, full_version: str, provides: set[str], depends: set[str]) -> None:
    """``pc:<name>=<ver>`` for the file and ``pc:<id>`` for each Requires/Requires.private."""
    provides.add(f"pc:{path.stem}={full_version}")
    variables: dict[str, str] = {}
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" in line and (":" not in line or line.index("=") < line.index(":")):
            key, _, value = line.partition("=")
            variables[key.strip()] = value.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in ("Requires", "Requires.private"):
            continue
        value = re.sub(r"\$\{([^}]+)\}", lambda m: variables.get(m.group(1), ""), value)
        # "a >= 1.0, b c" -> ids a, b, c (version constraints dropped, as melange does)
        value = _PC_VERSION_OP.sub(lambda m: m.group(1), value)
        for token in re.split(r"[,\s]+", value):
            if not token:
                continue
            name = re.split(r"<=|>=|!=|=|<|>", token)[0]
            if name:
                depends.add(f"pc:{name}")
