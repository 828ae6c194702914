"""The Alpine-style secdb ``security.json`` (what grype and trivy read for Wolfi;
reference/security.md §2.1): field order as wolfictl's Go struct, ``secfixes`` keys sorted,
``"0"`` for "not affected" (false positive).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nanodistro.errors import FormatError
from nanodistro.formats.gojson import go_json

__all__ = ["APK_URL", "NAK", "SecDb", "SecDbPackage", "decode_secdb", "encode_secdb"]

APK_URL = "{{urlprefix}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk"
NAK = "0"


@dataclass(frozen=True)
class SecDbPackage:
    name: str
    secfixes: Mapping[str, Sequence[str]]  # version (or "0") -> vulnerability IDs


@dataclass(frozen=True)
class SecDb:
    archs: Sequence[str]
    repo_name: str
    url_prefix: str
    packages: Sequence[SecDbPackage] = field(default_factory=list)
    apk_url: str = APK_URL


def encode_secdb(db: SecDb) -> bytes:
    """``json.MarshalIndent(db, "", "  ")``: no final newline, as wolfictl wrote it."""
    return go_json(
        {
            "apkurl": db.apk_url,
            "archs": list(db.archs),
            "reponame": db.repo_name,
            "urlprefix": db.url_prefix,
            "packages": [
                {
                    "pkg": {
                        "name": pkg.name,
                        "secfixes": {key: list(pkg.secfixes[key]) for key in sorted(pkg.secfixes)},
                    }
                }
                for pkg in db.packages
            ],
        }
    )


def decode_secdb(data: bytes, where: str = "security.json") -> SecDb:
    try:
        raw = json.loads(data)
        packages = [
            SecDbPackage(
                name=str(entry["pkg"]["name"]),
                secfixes={
                    str(k): [str(v) for v in ids]
                    for k, ids in entry["pkg"].get("secfixes", {}).items()
                },
            )
            for entry in raw.get("packages") or []
        ]
        return SecDb(
            archs=[str(a) for a in raw.get("archs", [])],
            repo_name=str(raw.get("reponame", "")),
            url_prefix=str(raw.get("urlprefix", "")),
            packages=packages,
            apk_url=str(raw.get("apkurl", APK_URL)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise FormatError(f"not a secdb document ({error})", where=where) from None
