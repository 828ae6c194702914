"""SLSA Provenance v1 for built packages: what went into each ``.apk`` and who built it.

One statement per package; its subject is the ``.apk`` (file name, sha256 of its bytes). The
``resolvedDependencies`` name every input, each with ``annotations.kind``:

- ``recipe``: the recipe file (path relative to its git work tree, sha256 of its bytes);
  ``recipe-file``: each file of the recipe's source directory (patches, ...);
- ``workspace``: the git work tree the recipe is in (``git+<origin or file URL>``,
  ``gitCommit`` of HEAD, ``dirty`` when the recipe differs from HEAD); absent outside git;
- ``source``: each fetched tarball (URI, sha256 + sha512) or git checkout (``git+URI``,
  ``gitCommit``);
- ``environment``: each package installed into the build root (sha256 of the ``.apk`` bytes,
  its apk identity), from the repository it was resolved against;
- ``toolchain``: the read-only toolchain root and its identity (distribution, compiler
  versions; also in the package's ``.nanodistro.json``);
- ``runtime``: each runtime dependency of the package, with the package that provides it now
  (just built, or in a configured repository) or the toolchain root.

``buildDefinition`` depends only on these inputs, so the same inputs give the same bytes there
and any changed input changes it; ``runDetails`` holds the builder id, the times and a fresh
invocation id. Built in the control plane from the build's result; never in a sandbox.
"""

from __future__ import annotations

import datetime
import hashlib
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nanodistro
from nanodistro.builder.config import BuildResult
from nanodistro.builder.package import BuiltPackage
from nanodistro.errors import VersionError
from nanodistro.formats.intoto import (
    Provenance,
    ResourceDescriptor,
    Statement,
    format_time,
    provenance_statement,
)
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.version import parse_dependency
from nanodistro.trust.provenance import BUILD_TYPE_APK, BUILDER_ID

__all__ = ["ProvenanceRun", "builder_id_for", "package_statement", "recipe_inputs"]

#: what the runtime-dependency resolution sees: (repository, packages) in priority order
Providers = Sequence[tuple[str, Iterable[PackageInfo]]]


@dataclass(frozen=True)
class ProvenanceRun:
    """The facts about one build run that are not in its result."""

    builder_id: str
    started: datetime.datetime
    finished: datetime.datetime
    invocation_id: str
    build_options: tuple[str, ...] = ()
    toolchain_root: str = "/"
    providers: Providers = ()  # repositories for runtime dependencies
    toolchain_satisfies: Callable[[str], bool] | None = None


def builder_id_for(namespace: str) -> str:
    """``BUILDER_ID``, with ``#<workspace name>`` for builds of a named workspace (the
    defaults ``nanodistro``/``unknown`` mean no workspace)."""
    if namespace in ("", "unknown", "nanodistro"):
        return BUILDER_ID
    return f"{BUILDER_ID}#{namespace}"


def _git(cwd: Path, *args: str) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recipe_inputs(recipe_path: Path, package_name: str) -> list[ResourceDescriptor]:
    """The recipe file, its source directory's files and, in git, the work tree's commit."""
    recipe_path = Path(recipe_path)
    top = _git(recipe_path.parent, "rev-parse", "--show-toplevel")
    base = Path(top) if top else recipe_path.parent

    def relative(path: Path) -> str:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return path.name

    recipe_name = relative(recipe_path)
    inputs = [
        ResourceDescriptor(
            name=recipe_name,
            digest={"sha256": _sha256(recipe_path.read_bytes())},
            annotations={"kind": "recipe"},
        )
    ]
    source_dir = recipe_path.parent / package_name
    if source_dir.is_dir():
        for file in sorted(p for p in source_dir.rglob("*") if p.is_file() and not p.is_symlink()):
            inputs.append(
                ResourceDescriptor(
                    name=relative(file),
                    digest={"sha256": _sha256(file.read_bytes())},
                    annotations={"kind": "recipe-file"},
                )
            )
    head = _git(base, "rev-parse", "--verify", "HEAD") if top else ""
    if head:
        origin = _git(base, "remote", "get-url", "origin")
        location = origin or Path(top).as_uri()
        paths = [recipe_name] + ([relative(source_dir)] if source_dir.is_dir() else [])
        dirty = bool(_git(base, "status", "--porcelain", "--", *paths))
        inputs.append(
            ResourceDescriptor(
                name="workspace",
                uri=f"git+{location}",
                digest={"gitCommit": head},
                annotations={"kind": "workspace", "dirty": dirty},
            )
        )
    return inputs


def _source_inputs(result: BuildResult) -> list[ResourceDescriptor]:
    inputs = []
    for source in result.sources:
        annotations: dict[str, object] = {"kind": "source", "type": source.kind}
        if source.kind == "git":
            for key in ("tag", "branch"):
                if getattr(source, key):
                    annotations[key] = getattr(source, key)
            uri = source.repository or source.uri
            inputs.append(
                ResourceDescriptor(
                    uri=uri if uri.startswith("git+") else f"git+{uri}",
                    digest={"gitCommit": source.commit} if source.commit else {},
                    annotations=annotations,
                )
            )
            continue
        digest = {k: v for k, v in (("sha256", source.sha256), ("sha512", source.sha512)) if v}
        for key, value in (
            ("purlName", source.purl_name),
            ("purlVersion", source.purl_version),
            # a mirror:// URI as [mirrors] resolved it (the SBOM's download location)
            ("downloadUrl", source.download_url if source.download_url != source.uri else ""),
        ):
            if value:
                annotations[key] = value
        inputs.append(ResourceDescriptor(uri=source.uri, digest=digest, annotations=annotations))
    return inputs


def _package_uri(repository: str, arch: str, filename: str) -> str:
    if repository.startswith("<"):  # built in this run (builder/environment.BUILT_REPOSITORY)
        return f"apk:{filename}"
    if "://" not in repository:
        repository = Path(repository).resolve().as_uri()
    return f"{repository.rstrip('/')}/{arch}/{filename}"


def _environment_inputs(result: BuildResult) -> list[ResourceDescriptor]:
    return [
        ResourceDescriptor(
            name=f"{p.name}-{p.version}",
            uri=_package_uri(p.repository, result.arch, p.filename),
            digest={"sha256": p.sha256},
            annotations={"kind": "environment", "apkChecksum": p.checksum},
        )
        for p in sorted(result.environment_packages, key=lambda p: (p.name, p.version))
    ]


def _toolchain_input(result: BuildResult, root: str) -> ResourceDescriptor:
    return ResourceDescriptor(
        name="toolchain",
        uri=Path(root).as_uri(),
        annotations={"kind": "toolchain", "identity": dict(sorted(result.toolchain.items()))},
    )


def _provider(
    atom: str, built: Sequence[BuiltPackage], run: ProvenanceRun, arch: str
) -> ResourceDescriptor:
    """What satisfies ``atom`` now: a package of this build, of a repository, or the toolchain."""
    try:
        dep = parse_dependency(atom)
    except VersionError:
        return ResourceDescriptor(
            name=atom, uri=f"apk-dependency:{atom}", annotations={"kind": "runtime"}
        )

    def satisfies(info: PackageInfo) -> bool:
        if info.name == dep.name and dep.matches_version(info.version, info.checksum):
            return True
        for provide in info.provides:
            try:
                claim = parse_dependency(provide)
            except VersionError:
                continue
            # an unversioned (virtual) provide satisfies only an unversioned atom
            if claim.name == dep.name and dep.matches_version(claim.version, None):  # type: ignore[arg-type]
                return True
        return False

    for package in built:
        if satisfies(package.info):
            return ResourceDescriptor(
                name=atom,
                uri=f"apk:{package.filename}",
                digest={"sha256": _sha256(package.data)},
                annotations={
                    "kind": "runtime",
                    "package": f"{package.info.name}-{package.info.version}",
                },
            )
    for repository, infos in run.providers:
        for info in infos:
            if satisfies(info):
                return ResourceDescriptor(
                    name=atom,
                    uri=_package_uri(repository, arch, info.filename),
                    annotations={
                        "kind": "runtime",
                        "package": f"{info.name}-{info.version}",
                        "apkChecksum": info.checksum or "",
                    },
                )
    if run.toolchain_satisfies is not None and run.toolchain_satisfies(atom):
        return ResourceDescriptor(
            name=atom,
            uri=Path(run.toolchain_root).as_uri(),
            annotations={"kind": "runtime", "providedBy": "toolchain"},
        )
    return ResourceDescriptor(
        name=atom, uri=f"apk-dependency:{atom}", annotations={"kind": "runtime", "unresolved": True}
    )


def package_statement(result: BuildResult, package: BuiltPackage, run: ProvenanceRun) -> Statement:
    """The SLSA v1 provenance statement of one package of ``result``."""
    info = package.info
    dependencies = [
        *recipe_inputs(result.recipe_path, result.name),
        *_source_inputs(result),
        *_environment_inputs(result),
        _toolchain_input(result, run.toolchain_root),
        *(
            _provider(atom, result.packages, run, result.arch)
            for atom in info.depends
            if not atom.startswith("!")
        ),
    ]
    provenance = Provenance(
        build_type=BUILD_TYPE_APK,
        builder_id=run.builder_id,
        external_parameters={
            "recipe": dependencies[0].name,
            "package": info.name,
            "version": info.version,
            "arch": result.arch,
            "buildOptions": list(run.build_options),
        },
        internal_parameters={
            "sourceDateEpoch": result.source_date_epoch,
            "sandbox": result.sandbox,
            "depends": list(info.depends),
            "provides": list(info.provides),
        },
        resolved_dependencies=tuple(dependencies),
        builder_version={"nanodistro": nanodistro.__version__},
        invocation_id=run.invocation_id,
        started_on=format_time(run.started),
        finished_on=format_time(run.finished),
        byproducts=tuple(
            ResourceDescriptor(name=other.filename, digest={"sha256": _sha256(other.data)})
            for other in result.packages
            if other is not package
        ),
    )
    subject = ResourceDescriptor(name=package.filename, digest={"sha256": _sha256(package.data)})
    return provenance_statement([subject], provenance)
