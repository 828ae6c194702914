"""apko-style lock files (apko pkg/lock/lock.go, reference/formats.md §8.8)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import ImageError
from nanodistro.image.apkfile import ApkFile, b64

LOCK_VERSION = "v1"


@dataclass
class LockedRange:
    range: str
    checksum: str

    def to_dict(self) -> dict[str, str]:
        return {"range": self.range, "checksum": self.checksum}


@dataclass
class LockedPackage:
    name: str
    version: str
    url: str
    architecture: str
    checksum: str  # "Q1..." package identity
    control: LockedRange | None = None
    data: LockedRange | None = None
    signature: LockedRange | None = None
    repository: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "version": self.version,
            "architecture": self.architecture,
        }
        if self.repository:
            out["repository"] = self.repository
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        if self.control is not None:
            out["control"] = self.control.to_dict()
        if self.data is not None:
            out["data"] = self.data.to_dict()
        out["checksum"] = self.checksum
        return out

    @classmethod
    def from_apk(cls, apk: ApkFile, *, url: str, arch: str, repository: str) -> LockedPackage:
        signature = None
        if apk.signature_range is not None and apk.signature_sha1 is not None:
            signature = LockedRange(apk.signature_range.header(), "sha1-" + b64(apk.signature_sha1))
        return cls(
            name=apk.name,
            version=apk.version,
            url=url,
            architecture=arch,
            checksum=apk.identity,
            control=LockedRange(apk.control_range.header(), "sha1-" + b64(apk.control_sha1)),
            data=LockedRange(apk.data_range.header(), "sha256-" + b64(apk.data_sha256)),
            signature=signature,
            repository=repository,
        )

    def check(self, apk: ApkFile, *, where: str) -> None:
        """The fetched package must be exactly the locked one."""
        problems = []
        if apk.identity != self.checksum:
            problems.append(f"identity {apk.identity} != locked {self.checksum}")
        if (apk.name, apk.version) != (self.name, self.version):
            problems.append(f"is {apk.name}-{apk.version}, locked {self.name}-{self.version}")
        if self.data is not None and self.data.checksum != "sha256-" + b64(apk.data_sha256):
            problems.append("data checksum differs from the lock")
        if problems:
            raise ImageError(
                f"locked package {self.name}-{self.version} changed: {'; '.join(problems)}",
                where=where,
            )


@dataclass
class LockFile:
    config_name: str = ""
    config_checksum: str = ""
    keyring: list[dict[str, str]] = field(default_factory=list)
    repositories: list[dict[str, str]] = field(default_factory=list)
    build_repositories: list[dict[str, str]] = field(default_factory=list)
    runtime_repositories: list[dict[str, str]] = field(default_factory=list)
    packages: list[LockedPackage] = field(default_factory=list)
    base_dir: Path | None = None  # where relative package URLs are resolved

    def archs(self) -> list[str]:
        seen: list[str] = []
        for package in self.packages:
            if package.architecture not in seen:
                seen.append(package.architecture)
        return seen

    def for_arch(self, arch: str) -> list[LockedPackage]:
        return [p for p in self.packages if p.architecture == arch]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": LOCK_VERSION,
            "config": {"name": self.config_name, "checksum": self.config_checksum},
            "contents": {
                "keyring": self.keyring,
                "build_repositories": self.build_repositories,
                "runtime_repositories": self.runtime_repositories,
                "repositories": self.repositories,
                "packages": [p.to_dict() for p in self.packages],
            },
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()


def config_checksum(raw: dict[str, Any]) -> str:
    """``sha256-<b64>`` of the merged config as canonical JSON (our stand-in for apko's
    deep checksum: equal configs give equal checksums)."""
    data = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def _range(value: Any, *, where: str, field_name: str) -> LockedRange | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("checksum"), str):
        raise ImageError("expected {range, checksum}", where=where, field=field_name)
    return LockedRange(str(value.get("range", "")), value["checksum"])


def parse_lock(data: bytes, *, where: str) -> LockFile:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ImageError(f"lock file is not JSON ({error})", where=where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("contents"), dict):
        raise ImageError("expected an object with 'contents'", where=where)
    version = doc.get("version")
    if version not in (None, LOCK_VERSION):
        raise ImageError(f"unsupported lock version {version!r}", where=where, field="version")
    contents = doc["contents"]
    config = doc.get("config") or {}
    packages = []
    for index, item in enumerate(contents.get("packages") or []):
        field_name = f"contents.packages[{index}]"
        if not isinstance(item, dict):
            raise ImageError("expected an object", where=where, field=field_name)
        for key in ("name", "version", "url", "checksum"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ImageError(f"'{key}' is missing", where=where, field=field_name)
        packages.append(
            LockedPackage(
                name=item["name"],
                version=item["version"],
                url=item["url"],
                architecture=str(item.get("architecture", "")),
                checksum=item["checksum"],
                control=_range(
                    item.get("control"), where=where, field_name=f"{field_name}.control"
                ),
                data=_range(item.get("data"), where=where, field_name=f"{field_name}.data"),
                signature=_range(
                    item.get("signature"), where=where, field_name=f"{field_name}.signature"
                ),
                repository=str(item.get("repository", "")),
            )
        )
    return LockFile(
        config_name=str(config.get("name", "")),
        config_checksum=str(config.get("checksum", "")),
        keyring=list(contents.get("keyring") or []),
        repositories=list(contents.get("repositories") or []),
        build_repositories=list(contents.get("build_repositories") or []),
        runtime_repositories=list(contents.get("runtime_repositories") or []),
        packages=packages,
    )


def read_lock(path: Path) -> LockFile:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(f"cannot read lock file: {error.strerror}", where=str(path)) from None
    lock = parse_lock(data, where=str(path))
    lock.base_dir = Path(path).resolve().parent
    return lock
