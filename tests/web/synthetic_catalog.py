"""A synthetic factory workspace of any size, written in seconds: what the console would show
after months of cycles, without building anything.

``generate(root, recipes=1000)`` writes recipe files (valid melange YAML, some monitoring an
upstream), image configs, repository versions (``out/packages/versions/N/version.json`` with the
``stable`` and ``staging`` channels), OCI layouts of the images (index, manifest, config and a
small layer per build, tagged ``build-N``/``staging``/``stable``/``latest``), run logs, and the
state database's rows, inserted in bulk: upstream releases, recipe versions, packages, images,
jobs, runs and ~10 events per recipe, in the shapes the factory records them (see
factory/building.py, imagebuild.py, promote.py).

Each recipe ``pkg-NNNN`` has two versions: ``1.M.0`` published in repository version 1 and
``1.M.1`` in a later one (2..versions); each image holds ``image_packages`` packages and is
rebuilt (and promoted) in every repository version that changed one of them.

Used by bench/bench_console.py (1,000 recipes) and the API tests (a few dozen).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from nanodistro.factory.state import open_state
from nanodistro.factory.state.db import default_state_url
from nanodistro.factory.state.models import (
    EventRow,
    ImageRow,
    JobRow,
    PackageRow,
    RecipeVersionRow,
    RunRow,
    UpstreamReleaseRow,
)

__all__ = ["ARCH", "Synthetic", "generate", "recipe_name"]

ARCH = "x86_64"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

RECIPE = """package:
  name: {name}
  version: "{version}"
  epoch: 0
  description: synthetic recipe {name}
  copyright:
    - license: MIT
environment:
  contents:
    packages: [build-base{deps}]
pipeline:
  - runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/share/{name}
      echo {name} > ${{{{targets.destdir}}}}/usr/share/{name}/version
"""

UPDATE = """update:
  enabled: true
  http-regex:
    url: http://127.0.0.1:9/
    pattern: '{name}-([0-9.]+)\\.tar\\.gz'
"""

IMAGE = """contents:
  packages: [{packages}]
entrypoint:
  command: /bin/true
"""

TOML = """[workspace]
name = "{name}"
archs = ["{arch}"]

[keys]
name = "{name}"

[serve]
interval = "1h"
"""


def recipe_name(i: int) -> str:
    return f"pkg-{i:04d}"


def _sha(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Synthetic:
    """What ``generate`` wrote: enough for a test or a benchmark to know what to ask for."""

    root: Path
    recipes: list[str]
    images: list[str]
    repo_versions: int
    # image name -> [(repo version, digest), ...] oldest first
    image_builds: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # recipe -> [version, ...] oldest first (full versions, -r0)
    versions: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows inserted


@dataclass
class _Plan:
    """Everything computed before anything is written."""

    releases: list[dict[str, Any]] = field(default_factory=list)
    recipe_versions: list[dict[str, Any]] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, time: datetime, type_: str, subject: str, **payload: Any) -> None:
        self.events.append({"type": type_, "subject": subject, "time": time, "payload": payload})


def generate(
    root: Path,
    *,
    recipes: int = 1000,
    images: int = 50,
    image_packages: int = 20,
    repo_versions: int = 8,
    runs: int = 30,
    name: str = "synthetic",
) -> Synthetic:
    """Write a synthetic workspace at ``root`` (created; must not hold one already)."""
    if recipes < image_packages or repo_versions < 2:
        raise ValueError("expected recipes >= image_packages and repo_versions >= 2")
    root.mkdir(parents=True, exist_ok=True)
    names = [recipe_name(i) for i in range(recipes)]
    image_names = [f"img-{j:03d}" for j in range(images)]
    result = Synthetic(root, names, image_names, repo_versions)
    plan = _Plan()
    start = NOW - timedelta(days=3 * repo_versions + 5)
    version_time = {n: start + n * 3 * DAY for n in range(1, repo_versions + 1)}

    # recipes: two versions each, the second published in repository version 2..V
    contents: dict[int, dict[str, str]] = {n: {} for n in range(1, repo_versions + 1)}
    newly: dict[int, list[str]] = {n: [] for n in contents}
    for i, recipe in enumerate(names):
        minor = i % 7
        second_in = 2 + i % (repo_versions - 1)
        history = []
        for step, (upstream, repo_version) in enumerate(
            ((f"1.{minor}.0", 1), (f"1.{minor}.1", second_in))
        ):
            version = f"{upstream}-r0"
            history.append(version)
            published = version_time[repo_version] - timedelta(hours=2, seconds=i)
            released = published - timedelta(hours=6 + i % 48)
            file = f"{recipe}-{version}.apk"
            sha = _sha("apk", recipe, version)
            plan.releases.append(
                {
                    "recipe": recipe,
                    "version": upstream,
                    "provider": "github" if i % 3 == 0 else "http_regex",
                    "published_at": released if i % 3 == 0 else None,
                    "first_seen": released + timedelta(minutes=5),
                }
            )
            plan.event(
                released + timedelta(minutes=5),
                "release-detected",
                f"recipe:{recipe}",
                version=upstream,
                current=f"1.{minor}.0",
                provider="http_regex",
                published_at=None,
            )
            if step:
                plan.event(
                    released + timedelta(minutes=6),
                    "recipe-bumped",
                    f"recipe:{recipe}",
                    old=history[0],
                    new=version,
                    retired_patches=[],
                    commit=_sha("commit", recipe, version)[:40],
                )
            built = published - timedelta(minutes=10)
            plan.event(built - DAY / 96, "build-started", f"recipe:{recipe}", version=version)
            if step:
                plan.event(
                    built - timedelta(minutes=1),
                    "test-passed",
                    f"recipe:{recipe}",
                    version=version,
                    package=recipe,
                    against="build",
                )
            plan.event(
                built,
                "build-succeeded",
                f"recipe:{recipe}",
                version=version,
                status="built",
                triggers={},
                packages=[{"file": file, "sha256": sha}],
                log=str(root / ".nanodistro" / "builds" / f"{recipe}-{version}" / "logs"),
            )
            plan.event(
                published,
                "published",
                f"package:{recipe}",
                version=version,
                arch=ARCH,
                file=file,
                sha256=sha,
                recipe=recipe,
                repo_version=repo_version,
            )
            recipe_sha = _sha("recipe", recipe, version)
            plan.recipe_versions.append(
                {
                    "recipe": recipe,
                    "version": version,
                    "recipe_sha256": recipe_sha,
                    "repo_version": repo_version,
                    "published_at": published,
                }
            )
            plan.packages.append(
                {
                    "name": recipe,
                    "version": version,
                    "arch": ARCH,
                    "sha256": sha,
                    "recipe": recipe,
                    "repo_version": repo_version,
                    "published_at": published,
                }
            )
            plan.jobs.append(
                _job(
                    "build",
                    {
                        "arch": ARCH,
                        "path": str(root / "recipes" / f"{recipe}.yaml"),
                        "recipe": recipe,
                        "recipe_sha256": recipe_sha,
                        "triggers": {},
                        "version": version,
                    },
                    {"status": "built", "packages": [file]},
                    built - DAY / 96,
                    built,
                )
            )
            newly[repo_version].append(f"{ARCH}/{file}")
        result.versions[recipe] = history
        # what each repository version holds of this recipe
        for n in contents:
            contents[n][f"{recipe}-{history[1 if n >= second_in else 0]}.apk"] = _sha(
                "apk", recipe, history[1 if n >= second_in else 0]
            )
        deps = f", {names[i - 1]}" if i % 10 and i else ""
        text = RECIPE.format(name=recipe, version=f"1.{minor}.1", deps=deps)
        if i % 4 == 0:
            text += UPDATE.format(name=recipe)
        _write(root / "recipes" / f"{recipe}.yaml", text)

    # images: rebuilt and promoted in every repository version that changed one of their packages
    stable_images: dict[int, dict[str, str]] = {n: {} for n in contents}
    for j, image in enumerate(image_names):
        members = sorted({names[(j * 7 + m * 13) % recipes] for m in range(image_packages)})
        _write(root / "images" / f"{image}.yaml", IMAGE.format(packages=", ".join(members)))
        builds: list[tuple[int, str]] = []
        previous: str | None = None
        for n in contents:
            held = sorted(
                f"{r}-{result.versions[r][1 if f'{r}-{result.versions[r][1]}.apk' in contents[n] else 0]}"
                for r in members
            )
            if previous is not None and held == plan.images[-1]["packages"]:
                stable_images[n][image] = previous
                continue
            digest = _write_image_build(root, image, n, len(builds) + 1, held)
            when = version_time[n] - timedelta(hours=1, seconds=j)
            plan.images.append(
                {
                    "name": image,
                    "digest": digest,
                    "tag": f"build-{len(builds) + 1}",
                    "repo_version": n,
                    "created_at": when,
                    "packages": held,
                }
            )
            inputs = _sha("image-inputs", image, n)
            plan.event(
                when,
                "image-built",
                f"image:{image}",
                digest=digest,
                tag=f"build-{len(builds) + 1}",
                repo_version=n,
                packages=held,
                inputs=inputs,
            )
            plan.event(
                when + timedelta(minutes=2),
                "smoke-passed",
                f"image:{image}",
                digest=digest,
                runtime="runc",
                output="ok",
                detail="",
            )
            plan.event(
                version_time[n] + timedelta(seconds=1 + j),
                "promoted",
                f"image:{image}",
                cycle=_cycle(n),
                digest=digest,
                previous=previous,
                version=n,
                packages=held,
            )
            plan.jobs.append(
                _job(
                    "image",
                    {
                        "config": str(root / "images" / f"{image}.yaml"),
                        "format": 2,
                        "image": image,
                        "inputs": inputs,
                    },
                    {"digest": digest},
                    when - timedelta(minutes=3),
                    when,
                )
            )
            builds.append((n, digest))
            stable_images[n][image] = digest
            previous = digest
        result.image_builds[image] = builds
        _tag_layout(root, image, builds)

    # repository versions and their promotions to stable
    for n, files in contents.items():
        _write(
            root / "out/packages/versions" / str(n) / "version.json",
            json.dumps(
                {
                    "version": n,
                    "created": version_time[n].isoformat().replace("+00:00", "Z"),
                    "parent": n - 1 if n > 1 else None,
                    "archs": {
                        ARCH: {
                            "index_sha256": _sha("index", n),
                            "packages": dict(sorted(files.items())),
                        }
                    },
                },
                indent=2,
            ),
        )
        (root / "out/packages/versions" / str(n) / ARCH).mkdir(exist_ok=True)
        plan.event(
            version_time[n],
            "promoted",
            "channel:stable",
            cycle=_cycle(n),
            version=n,
            previous=n - 1 if n > 1 else None,
            packages=sorted(newly[n]),
            images=stable_images[n],
        )
    # a gate that held one cycle back, for the events page's filters
    plan.event(
        version_time[2] - timedelta(hours=12),
        "gate-blocked",
        "channel:stable",
        cycle=_cycle(2) + "-blocked",
        reasons=[f"image img-000 smoke test failed for {names[0]}"],
    )
    for channel in ("stable", "staging"):
        link = root / "out/packages" / channel
        link.symlink_to(f"versions/{repo_versions}")
    (root / "out/packages" / ARCH).mkdir(exist_ok=True)

    # runs the console asked for: cycles, each with its log
    log_dir = root / ".nanodistro" / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for k in range(1, runs + 1):
        began = NOW - timedelta(hours=runs - k + 1)
        log = log_dir / f"{k}.log"
        log.write_text(
            "".join(f"{began:%H:%M:%S} cycle step {s} of run {k}\n" for s in range(20))
            + f"{began:%H:%M:%S} run {k} succeeded in 42.0s\n"
        )
        plan.runs.append(
            {
                "kind": "cycle",
                "state": "succeeded",
                "params": {"monitor": True},
                "requested_by": "schedule" if k % 3 else "operator",
                "dedup_key": None,
                "created_at": began,
                "started_at": began,
                "finished_at": began + timedelta(seconds=42),
                "result": {"status": "promoted", "ok": True},
                "error": None,
                "log_path": str(log),
            }
        )

    _write(root / "nanodistro.toml", TOML.format(name=name, arch=ARCH))
    (root / "keys").mkdir(exist_ok=True)
    plan.events.sort(key=lambda e: e["time"])
    result.rows = _insert(root, plan)
    return result


def _cycle(n: int) -> str:
    return f"{(NOW - timedelta(days=40) + n * 3 * DAY):%Y%m%dT%H%M%SZ}-{n:06x}"


def _job(
    kind: str, inputs: dict[str, Any], result: dict[str, Any], began: datetime, ended: datetime
) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": _sha("job", kind, json.dumps(inputs, sort_keys=True)),
        "state": "succeeded",
        "attempts": 1,
        "max_attempts": 3,
        "not_before": began,
        "inputs": inputs,
        "result": result,
        "error": None,
        "log_path": None,
        "created_at": began,
        "started_at": began,
        "finished_at": ended,
        "owner": None,
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _write_image_build(root: Path, image: str, version: int, build: int, held: list[str]) -> str:
    """One image build in ``out/images/<image>``: a layer listing its packages, a config, a
    manifest and the image index; the index's digest (what the factory calls the image's)."""
    layout = root / "out" / "images" / image
    payload = ("\n".join(held) + "\n").encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo("etc/synthetic-packages")
        info.size, info.mtime, info.mode = len(payload), 1_700_000_000, 0o644
        tar.addfile(info, io.BytesIO(payload))
    layer = _blob(layout, gzip.compress(tar_bytes.getvalue(), mtime=0))
    diff_id = "sha256:" + hashlib.sha256(tar_bytes.getvalue()).hexdigest()
    config = _blob(
        layout,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode(),
    )
    manifest = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            }
        ).encode(),
    )
    index = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        **manifest,
                        "platform": {"architecture": "amd64", "os": "linux"},
                    }
                ],
                "annotations": {"dev.nanodistro.build": f"{image}/{version}/{build}"},
            }
        ).encode(),
    )
    return str(index["digest"])


def _tag_layout(root: Path, image: str, builds: list[tuple[int, str]]) -> None:
    """``index.json`` of the layout: ``build-N`` for each build, ``staging``, ``stable`` and
    ``latest`` on the newest."""
    layout = root / "out" / "images" / image

    def entry(digest: str, tag: str) -> dict[str, Any]:
        size = (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).stat().st_size
        return {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }

    entries = [entry(digest, f"build-{k}") for k, (_n, digest) in enumerate(builds, 1)]
    entries += [entry(builds[-1][1], tag) for tag in ("staging", "latest", "stable")]
    _write(
        layout / "index.json",
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": entries,
            },
            indent=2,
        ),
    )
    _write(layout / "oci-layout", '{"imageLayoutVersion": "1.0.0"}')


def _insert(root: Path, plan: _Plan) -> dict[str, int]:
    """Bulk inserts into the migrated state database, one transaction."""
    tables = (
        (UpstreamReleaseRow, plan.releases),
        (RecipeVersionRow, plan.recipe_versions),
        (PackageRow, plan.packages),
        (ImageRow, plan.images),
        (JobRow, plan.jobs),
        (RunRow, plan.runs),
        (EventRow, plan.events),
    )
    with open_state(default_state_url(root)) as state, state.session() as session:
        for model, rows in tables:
            if rows:
                session.execute(insert(model), rows)
        session.commit()
    if os.environ.get("NANODISTRO_SYNTHETIC_VERBOSE"):
        print({m.__tablename__: len(r) for m, r in tables})
    return {model.__tablename__: len(rows) for model, rows in tables}
