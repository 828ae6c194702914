"""A hand-assembled root filesystem and a generated OSV set planting known vulnerabilities.

The root (distro ``testdistro`` per its os-release) holds an installed db, Python dist-info, an npm
package and a Go binary: a real ELF (a copy of the host's ``true``) given a ``.go.buildinfo``
section by the host's ``objcopy``, the section body written with formats/gobuildinfo's encoder
(no Go toolchain on this machine). ``PLANTED`` is exactly what a scan without advisories finds;
the OSV set also holds records that must not match (fixed below the installed version, another
ecosystem, ``last_affected`` below, another repository, a withdrawn record, a fixed tag below)
and one broken record.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from nanodistro.formats.gobuildinfo import encode_inline
from nanodistro.formats.installed_db import (
    InstalledDir,
    InstalledFile,
    InstalledPackage,
    format_installed,
)
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.vuln.match import GitSource

DISTRO = "testdistro"
SITE = "usr/lib/python3.12/site-packages"
GIT_SOURCES = {
    "zlibx": GitSource("https://github.com/example/zlibx.git", "v1.2.11", "1.2.11"),
    "cjson": GitSource("https://github.com/example/cjson", "a" * 40, "1.7.15"),
}
CVSS_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5

# (package, vulnerability id) a scan without advisories reports, and nothing else.
PLANTED = {
    ("libfoo", "TEST-APK-1"),
    ("libfoo-dev", "TEST-APK-1"),  # via its origin, libfoo
    ("requests", "GHSA-pypi-0001"),
    ("zlibx", "TEST-GIT-TAG"),
    ("cjson", "TEST-GIT-LIST"),
    ("golang.org/x/net", "GO-2023-0001"),
    ("stdlib", "GO-2023-0002"),
    ("lodash", "GHSA-npm-0001"),
}

GOMOD = (
    "path\texample.com/gotool\n"
    "mod\texample.com/gotool\tv1.0.0\th1:abc=\n"
    "dep\tgolang.org/x/net\tv0.7.0\th1:def=\n"
    "dep\tgolang.org/x/text\tv0.3.0\th1:ghi=\n"
    "=>\tgolang.org/x/text\tv0.14.0\th1:jkl=\n"
    "build\tGOOS=linux\n"
)


def go_binary(path: Path, tmp: Path) -> None:
    """A real ELF with a Go 1.18+ inline build info section (``go1.21.0``, ``GOMOD``)."""
    section = tmp / "buildinfo.bin"
    section.write_bytes(encode_inline("go1.21.0", GOMOD))
    true = shutil.which("true")
    assert true is not None
    subprocess.run(
        ["objcopy", "--add-section", f".go.buildinfo={section}", true, str(path)], check=True
    )
    path.chmod(0o755)


def _package(name: str, version: str, files: list[str], origin: str = "") -> InstalledPackage:
    dirs: dict[str, InstalledDir] = {}
    for file in files:
        parent, _, base = file.rpartition("/")
        dirs.setdefault(parent, InstalledDir(parent)).files.append(InstalledFile(base))
    info = PackageInfo(name=name, version=version, arch="x86_64", origin=origin or name)
    info.checksum = "Q1" + "A" * 27 + "="
    return InstalledPackage(info=info, dirs=list(dirs.values()))


def build_root(root: Path, tmp: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(f'ID={DISTRO}\nNAME="Test distro"\n')
    packages = [
        _package("libfoo", "1.2.3-r0", ["usr/lib/libfoo.so.1"]),
        _package("libfoo-dev", "1.2.3-r0", ["usr/include/foo.h"], origin="libfoo"),
        _package("zlibx", "1.2.11-r1", ["usr/lib/libzlibx.so.1"]),
        _package("cjson", "1.7.15-r0", ["usr/lib/libcjson.so.1"]),
        _package("py3-requests", "2.25.0-r0", [f"{SITE}/requests-2.25.0.dist-info/METADATA"]),
        _package("gotool", "1.0.0-r0", ["usr/bin/gotool"]),
    ]
    db = root / "usr/lib/apk/db/installed"
    db.parent.mkdir(parents=True)
    db.write_text(format_installed(packages))
    dist = root / SITE / "requests-2.25.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\n\nlong text\nName: nope\n"
    )
    egg = root / SITE / "urllib3-1.26.18.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.2\nName: urllib3\nVersion: 1.26.18\n")
    npm = root / "usr/lib/node_modules/lodash"
    npm.mkdir(parents=True)
    (npm / "package.json").write_text(json.dumps({"name": "lodash", "version": "4.17.20"}))
    (root / "usr/bin").mkdir()
    go_binary(root / "usr/bin/gotool", tmp)
    return root


def _record(record_id: str, affected: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2024-01-01T00:00:00Z",
        "affected": affected,
        **extra,
    }


def _eco(
    ecosystem: str, name: str, events: list[dict[str, str]], kind: str = "ECOSYSTEM", **extra: Any
) -> dict[str, Any]:
    return {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": kind, "events": events}],
        **extra,
    }


def _git(
    repo: str, events: list[dict[str, str]], versions: list[str] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"ranges": [{"type": "GIT", "repo": repo, "events": events}]}
    if versions is not None:
        entry["versions"] = versions
    return entry


def osv_records() -> dict[str, dict[str, Any]]:
    zero = {"introduced": "0"}
    return {
        # planted
        "TEST-APK-1": _record(
            "TEST-APK-1",
            [_eco(DISTRO, "libfoo", [zero, {"fixed": "1.2.4-r0"}])],
            aliases=["CVE-2024-0001"],
            severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}],
            summary="libfoo overflow",
        ),
        "GHSA-pypi-0001": _record(
            "GHSA-pypi-0001",
            [_eco("PyPI", "Requests", [zero, {"fixed": "2.31.0"}])],
            aliases=["CVE-2023-32681"],
            database_specific={"severity": "MODERATE"},
        ),
        "TEST-GIT-TAG": _record(
            "TEST-GIT-TAG",
            [_git("https://github.com/example/zlibx", [zero, {"fixed": "v1.2.12"}])],
            severity=[{"type": "CVSS_V3", "score": CVSS_HIGH}],
        ),
        "TEST-GIT-LIST": _record(
            "TEST-GIT-LIST",
            [
                _git(
                    "https://github.com/example/cjson.git",
                    [{"introduced": "b" * 40}, {"fixed": "c" * 40}],
                    versions=["v1.7.14", "v1.7.15"],
                )
            ],
        ),
        "GO-2023-0001": _record(
            "GO-2023-0001",
            [_eco("Go", "golang.org/x/net", [zero, {"fixed": "0.17.0"}], kind="SEMVER")],
            database_specific={"severity": "HIGH"},
        ),
        "GO-2023-0002": _record(
            "GO-2023-0002",
            [_eco("Go", "stdlib", [{"introduced": "1.21.0"}, {"fixed": "1.21.1"}], kind="SEMVER")],
        ),
        "GHSA-npm-0001": _record(
            "GHSA-npm-0001",
            [_eco("npm", "lodash", [zero, {"fixed": "4.17.21"}], kind="SEMVER")],
            database_specific={"severity": "LOW"},
        ),
        # must not match
        "TEST-APK-FIXED-BELOW": _record(
            "TEST-APK-FIXED-BELOW", [_eco(DISTRO, "libfoo", [zero, {"fixed": "1.2.2-r0"}])]
        ),
        "TEST-OTHER-DISTRO": _record(
            "TEST-OTHER-DISTRO", [_eco("Wolfi", "libfoo", [zero, {"fixed": "9.0-r0"}])]
        ),
        "PYSEC-LAST-BELOW": _record(
            "PYSEC-LAST-BELOW",
            [_eco("PyPI", "requests", [zero, {"last_affected": "2.20.0"}])],
        ),
        "TEST-GIT-OTHER-REPO": _record(
            "TEST-GIT-OTHER-REPO", [_git("https://github.com/other/zlibx", [zero, {"fixed": "v9"}])]
        ),
        "TEST-GIT-FIXED-BELOW": _record(
            "TEST-GIT-FIXED-BELOW",
            [
                _git(
                    "https://github.com/example/zlibx",
                    [{"introduced": "v1.0"}, {"fixed": "v1.2.10"}],
                )
            ],
        ),
        "GHSA-withdrawn": _record(
            "GHSA-withdrawn", [_eco("npm", "lodash", [zero])], withdrawn="2024-02-01T00:00:00Z"
        ),
        "GO-TEXT-FIXED": _record(
            "GO-TEXT-FIXED",
            [
                _eco("Go", "golang.org/x/text", [zero, {"fixed": "0.3.8"}], kind="SEMVER")
            ],  # the binary has the replacement v0.14.0
        ),
        "PYSEC-URLLIB3-INTRO-ABOVE": _record(
            "PYSEC-URLLIB3-INTRO-ABOVE",
            [_eco("PyPI", "urllib3", [{"introduced": "2.0.0"}, {"fixed": "2.0.7"}])],
        ),
    }


def write_osv_dir(directory: Path, *, broken: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for record_id, record in osv_records().items():
        (directory / f"{record_id}.json").write_text(json.dumps(record))
    if broken:
        bad = _record(
            "TEST-BROKEN",
            [
                {
                    "package": {"ecosystem": "npm", "name": "lodash"},
                    "ranges": [{"type": "SEMVER", "events": [{"intro": "0"}]}],
                }
            ],
        )
        (directory / "broken.json").write_text(json.dumps(bad))
    return directory


def layer_tar(files: dict[str, tuple[int, bytes]], path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, (mode, data) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            import io

            tar.addfile(info, io.BytesIO(data))
