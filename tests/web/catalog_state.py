"""A catalog's factory state written directly (rows, events, channel versions, one real .apk):
what the catalog, package and freshness pages read, without building anything.

The story: libgreet 1.2.0 and hello 2.0 were released, built and promoted to stable (repository
version 1); then libgreet 1.3.0 was released, built into staging (version 2) and kept out of
stable by the gate. hello depends on libgreet's soname at run time.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nanodistro.builder.sbom import package_sbom, sbom_path
from nanodistro.factory import events
from nanodistro.factory.records import record_recipe_version, record_release
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import ImageRow, JobRow, PackageRow
from nanodistro.formats.apk import write_apk
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.dsse import INTOTO_PAYLOAD_TYPE, sign_envelope
from nanodistro.formats.pkginfo import PackageInfo, apk_filename
from nanodistro.formats.tarentry import TarEntry
from nanodistro.trust.ecdsa import EcdsaSigner
from nanodistro.trust.provenance import envelopes_to_jsonl, provenance_path

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ARCH = "x86_64"

# (name, version, recipe, repo_version, published)
PACKAGES = [
    ("libgreet", "1.2.0-r0", "libgreet", 1, T0 + timedelta(hours=1)),
    ("libgreet-dev", "1.2.0-r0", "libgreet", 1, T0 + timedelta(hours=1)),
    ("hello", "2.0-r0", "hello", 1, T0 + timedelta(hours=2)),
    ("libgreet", "1.3.0-r0", "libgreet", 2, T0 + timedelta(days=2, hours=1)),
    ("libgreet-dev", "1.3.0-r0", "libgreet", 2, T0 + timedelta(days=2, hours=1)),
]
STABLE = {"libgreet": "1.2.0-r0", "libgreet-dev": "1.2.0-r0", "hello": "2.0-r0"}
STAGING = {"libgreet": "1.3.0-r0", "libgreet-dev": "1.3.0-r0", "hello": "2.0-r0"}

ADVISORY = """schema-version: 2.0.2

package:
  name: hello

advisories:
  - id: CGA-aaaa-bbbb-cccc
    aliases:
      - CVE-2025-0001
    events:
      - timestamp: 2025-01-02T00:00:00Z
        type: detection
        data:
          type: manual
      - timestamp: 2025-01-03T00:00:00Z
        type: fixed
        data:
          fixed-version: 2.0-r0
"""


def sha(name: str, version: str) -> str:
    return f"{abs(hash((name, version))):064d}"[:64]


def _apk_bytes(name: str, version: str) -> bytes:
    """A real (unsigned) package with its SPDX document where the builder puts it."""
    document = package_sbom(
        name=name,
        full_version=version,
        arch=ARCH,
        licenses=["MIT"],
        copyright_text="",
        description=f"{name} for the web tests",
        sources=[],
        recipe_path=f"recipes/{name}.yaml",
        recipe_commit="",
        source_date_epoch=1_700_000_000,
    )
    entries = [
        TarEntry(path="usr", type="dir", mode=0o755),
        TarEntry(path="usr/bin", type="dir", mode=0o755),
        TarEntry(path=f"usr/bin/{name}", mode=0o755, data=b"#!/bin/sh\necho hi\n"),
        TarEntry(path="var", type="dir", mode=0o755),
        TarEntry(path="var/lib", type="dir", mode=0o755),
        TarEntry(path="var/lib/db", type="dir", mode=0o755),
        TarEntry(path="var/lib/db/sbom", type="dir", mode=0o755),
        TarEntry(path=sbom_path(name, version), data=document),
    ]
    info = PackageInfo(name=name, version=version, arch=ARCH, license="MIT", origin=name)
    return write_apk(info, entries, key=None, source_date_epoch=1_700_000_000)


def _write_version(repo: Path, number: int, files: dict[str, str]) -> None:
    """versions/<N>/: version.json and an (unsigned) APKINDEX where hello needs libgreet."""
    arch_dir = repo / "versions" / str(number) / ARCH
    arch_dir.mkdir(parents=True)
    infos = []
    for name, version in files.items():
        info = PackageInfo(name=name, version=version, arch=ARCH, origin=name, installed_size=1)
        info.checksum, info.file_size = "Q1" + "A" * 26 + "=", 1
        if name == "libgreet":
            info.provides = [f"so:libgreet.so.1=1.{number}"]
        if name == "hello":
            info.depends = ["so:libgreet.so.1", "busybox"]
        infos.append(info)
    (arch_dir / "APKINDEX.tar.gz").write_bytes(write_index(infos))
    document = {
        "version": number,
        "path": str(arch_dir.parent),
        "created": "2025-01-01T00:00:00Z",
        "parent": number - 1 or None,
        "archs": {
            ARCH: {
                "index_sha256": "",
                "packages": {apk_filename(n, v): sha(n, v) for n, v in files.items()},
            }
        },
    }
    (arch_dir.parent / "version.json").write_text(json.dumps(document))


def seed_catalog(root: Path, state: State, signer: EcdsaSigner | None = None) -> None:
    """Fill the workspace at ``root`` (recipes hello, libgreet, newthing) and its state."""
    recipes = root / "recipes"
    for recipe in ("hello", "libgreet", "newthing"):
        (recipes / f"{recipe}.yaml").write_text(f"package:\n  name: {recipe}\n")
    repo = root / "out" / "packages"
    (repo / ARCH).mkdir(parents=True)
    _write_version(repo, 1, STABLE)
    _write_version(repo, 2, STAGING)
    os.symlink("versions/1", repo / "stable")
    os.symlink("versions/2", repo / "staging")
    hello = repo / ARCH / apk_filename("hello", "2.0-r0")
    hello.write_bytes(_apk_bytes("hello", "2.0-r0"))
    if signer is not None:
        statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []})
        envelope = sign_envelope(
            INTOTO_PAYLOAD_TYPE, statement.encode(), [(signer.sign, signer.keyid)]
        )
        provenance_path(hello).write_bytes(envelopes_to_jsonl([envelope]))
    (root / "advisories").mkdir(exist_ok=True)
    (root / "advisories" / "hello.advisories.yaml").write_text(ADVISORY)

    record_release(state, "libgreet", "1.2.0", "http-regex", T0)
    record_release(state, "hello", "2.0", "http-regex", T0 + timedelta(hours=1))
    record_release(state, "libgreet", "1.3.0", "http-regex", T0 + timedelta(days=2))
    with state.session() as session, session.begin():
        for name, version, recipe, repo_version, published in PACKAGES:
            session.add(
                PackageRow(
                    name=name,
                    version=version,
                    arch=ARCH,
                    sha256=sha(name, version),
                    recipe=recipe,
                    repo_version=repo_version,
                    published_at=published,
                )
            )
        session.add(
            JobRow(
                kind="build",
                key="k-hello-build",
                state="succeeded",
                attempts=1,
                max_attempts=3,
                not_before=T0,
                inputs={"recipe": "hello", "version": "2.0-r0"},
                result={},
                log_path=str(root / ".nanodistro" / "logs" / "hello.log"),
                created_at=T0 + timedelta(hours=1),
                finished_at=T0 + timedelta(hours=2),
            )
        )
        session.add(
            JobRow(
                kind="image",
                key="k-hello-image",
                state="succeeded",
                attempts=1,
                max_attempts=3,
                not_before=T0,
                inputs={"recipe": "hello", "image": "hello"},
                result={},
                created_at=T0,
            )
        )
        session.add(
            ImageRow(
                name="hello",
                digest="sha256:" + "1" * 64,
                tag="build-1",
                repo_version=1,
                packages=["hello-2.0-r0", "libgreet-1.2.0-r0"],
            )
        )
    record_recipe_version(
        state, recipe="hello", version="2.0-r0", recipe_sha256="ab" * 32, repo_version=1
    )
    record_recipe_version(
        state, recipe="libgreet", version="1.2.0-r0", recipe_sha256="cd" * 32, repo_version=1
    )

    def at(hours: float) -> datetime:
        return T0 + timedelta(hours=hours)

    record = events.record
    record(state, events.BUILD_SUCCEEDED, "recipe:libgreet", {"version": "1.2.0-r0"}, at(1))
    record(state, events.BUILD_SUCCEEDED, "recipe:hello", {"version": "2.0-r0"}, at(2))
    record(state, events.TEST_FAILED, "recipe:hello", {"version": "2.0-r0", "against": ["x"],
                                                          "error": "boom"}, at(2.5))  # fmt: skip
    record(state, events.TEST_PASSED, "recipe:hello", {"version": "2.0-r0", "against": "build"},
           at(3))  # fmt: skip
    stable_files = [f"{ARCH}/{apk_filename(n, v)}" for n, v in STABLE.items()]
    record(state, events.PROMOTED, "channel:stable", {"version": 1, "packages": stable_files},
           at(5))  # fmt: skip
    record(state, events.BUILD_SUCCEEDED, "recipe:libgreet", {"version": "1.3.0-r0"}, at(49))
    record(state, events.GATE_BLOCKED, "channel:stable", {"version": 2, "reasons": ["smoke"]},
           at(50))  # fmt: skip
    record(state, events.BUILD_FAILED, "recipe:newthing", {"version": "0.1-r0"}, at(51))


def seed_synthetic(root: Path, state: State, recipes: int) -> None:
    """``recipes`` recipes pkg0000..., three versions each (the second in stable, the third in
    staging), a build event per version, a promotion per 100 recipes: the bench's catalog."""
    from nanodistro.factory.state.models import EventRow, UpstreamReleaseRow

    names = [f"pkg{i:04d}" for i in range(recipes)]
    for name in names:
        (root / "recipes" / f"{name}.yaml").write_text(f"package:\n  name: {name}\n")
    repo = root / "out" / "packages"
    stable = {name: "1.1-r0" for name in names}
    staging = {name: "1.2-r0" for name in names}
    for number, files in ((1, stable), (2, staging)):
        arch_dir = repo / "versions" / str(number) / ARCH
        arch_dir.mkdir(parents=True)
        listed = {apk_filename(n, v): sha(n, v) for n, v in files.items()}
        document = {"version": number, "archs": {ARCH: {"packages": listed}}}
        (arch_dir.parent / "version.json").write_text(json.dumps(document))
    os.symlink("versions/1", repo / "stable")
    os.symlink("versions/2", repo / "staging")
    with state.session() as session, session.begin():
        for i, name in enumerate(names):
            for minor in range(3):
                released = T0 + timedelta(days=minor, minutes=i)
                session.add(
                    UpstreamReleaseRow(
                        recipe=name, version=f"1.{minor}", provider="x", published_at=released
                    )
                )
                session.add(
                    PackageRow(
                        name=name,
                        version=f"1.{minor}-r0",
                        arch=ARCH,
                        sha256=sha(name, f"1.{minor}"),
                        recipe=name,
                        repo_version=minor or None,
                        published_at=released + timedelta(hours=1),
                    )
                )
                session.add(
                    EventRow(
                        type=events.BUILD_SUCCEEDED,
                        subject=f"recipe:{name}",
                        time=released + timedelta(hours=1),
                        payload={"version": f"1.{minor}-r0"},
                    )
                )
        for start in range(0, recipes, 100):
            batch = names[start : start + 100]
            for minor in (0, 1):
                session.add(
                    EventRow(
                        type=events.PROMOTED,
                        subject="channel:stable",
                        time=T0 + timedelta(days=minor, hours=3, minutes=start),
                        payload={
                            "version": 1,
                            "packages": [
                                f"{ARCH}/{apk_filename(n, f'1.{minor}-r0')}" for n in batch
                            ],
                        },
                    )
                )
