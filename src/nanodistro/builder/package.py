"""Turn one package's output tree into a signed ``.apk`` (melange ``EmitPackage``, §7.7).

The output directory was written by untrusted build steps, so packaging never trusts it: it is
read once (:func:`read_output`) into in-memory entries, every component opened beneath the
workspace without following links, and nothing is ever written into it. The SPDX SBOM is added
as an in-memory entry; SCA runs over the entries (with the sibling packages' entries, for
``-dev`` links); then the recipe's ``dependencies`` are merged with what SCA found (sorted,
deduplicated, self-provided deps removed) and the package is written with every mtime at
SOURCE_DATE_EPOCH and owners fixed to root (reproducible by construction).
A ``.nanodistro.json`` control file records the recipe hash (used to skip unchanged rebuilds)
and the toolchain identity; apk-tools ignores unknown dot-files in the control segment.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.builder.sbom import package_sbom, sbom_path
from nanodistro.builder.sca import ScaOptions, ScaResult, analyze
from nanodistro.builder.setcap import apply_setcap
from nanodistro.builder.sources import SourceRecord
from nanodistro.errors import BuildError, FormatError
from nanodistro.formats.apk import write_apk
from nanodistro.formats.pkginfo import PackageInfo, apk_filename
from nanodistro.formats.tarball import TarEntry, entries_from_directory, sort_key
from nanodistro.recipe.model import Capability, Dependencies, PackageOptions, Scriptlets
from nanodistro.trust.keys import SigningKey

NANODISTRO_CONTROL = ".nanodistro.json"
MELANGE_CONTROL = ".melange.yaml"  # the resolved build configuration, as melange writes it
_SCRIPT_FIELDS = (
    "pre_install",
    "post_install",
    "pre_deinstall",
    "post_deinstall",
    "pre_upgrade",
    "post_upgrade",
)


@dataclass
class PackageSpec:
    """Everything about one (sub)package that is not in its output directory."""

    name: str
    origin: str
    version: str  # upstream version, without -rN
    epoch: int
    arch: str
    description: str = ""
    url: str = ""
    commit: str = ""
    licenses: list[str] = field(default_factory=list)
    copyright_text: str = ""
    dependencies: Dependencies = field(default_factory=Dependencies)
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    setcap: list[Capability] = field(default_factory=list)

    @property
    def full_version(self) -> str:
        return f"{self.version}-r{self.epoch}"

    @property
    def filename(self) -> str:
        return apk_filename(self.name, self.full_version)


@dataclass
class BuiltPackage:
    """A package emitted by :func:`emit_package`."""

    info: PackageInfo
    data: bytes
    sca: ScaResult
    filename: str


def _int(value: str, what: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BuildError(f"{what} must be an integer, got {value!r}") from None


def read_output(outdir: Path, *, workspace: Path, source_date_epoch: int) -> list[TarEntry]:
    """The entries of a package's output tree, read once without following any link.

    ``workspace`` is the directory the host created for the build (not visible in the
    sandbox); every component from it down to ``outdir`` must be a real directory, so a step
    that replaced ``${{targets.destdir}}`` (or ``melange-out``) with a link to a host path is
    refused instead of read. Links inside the tree become symlink entries (their text, never
    followed); fifos, devices and sockets are a build failure naming the path.
    """
    try:
        entries = entries_from_directory(
            outdir,
            beneath=workspace,
            mtime=source_date_epoch,
            # host xattrs (SELinux labels, ...) never enter a package; capabilities come from
            # setcap
            with_xattrs=False,
        )
    except FormatError as error:
        raise BuildError(
            f"unsafe package output: {error.message}", where=error.where or str(outdir)
        ) from None
    for entry in entries:
        if entry.type in ("fifo", "chr", "blk"):
            raise BuildError(
                f"special file ({entry.type}) in the package output; a package holds only "
                "files, directories and links",
                where=str(outdir / entry.path),
            )
    return entries


def with_sbom(
    entries: Sequence[TarEntry], path: str, data: bytes, *, mtime: int, where: str
) -> list[TarEntry]:
    """``entries`` plus the SBOM file at ``path`` and its missing parent directories (0755,
    files 0644, at ``mtime``), in walk order: what writing it into the tree used to give,
    without writing anything. Something already at ``path`` or a non-directory on the way
    (a link placed by the build) is an error."""
    by_path = {entry.path: entry for entry in entries}
    parts = path.split("/")
    added: list[TarEntry] = []
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        existing = by_path.get(parent)
        if existing is None:
            added.append(TarEntry(parent, "dir", mode=0o755, mtime=mtime))
        elif existing.type != "dir":
            raise BuildError(
                f"the package output holds a {existing.type} at {parent}, where the SBOM "
                f"directory goes; expected a directory",
                where=f"{where}/{parent}",
            )
    if path in by_path:
        raise BuildError(
            f"the package output already holds {path}; the SBOM is written by the packager",
            where=f"{where}/{path}",
        )
    added.append(TarEntry(path, "file", mode=0o644, mtime=mtime, data=data))
    return sorted([*entries, *added], key=sort_key)


def emit_package(
    spec: PackageSpec,
    entries: Sequence[TarEntry],
    *,
    source_date_epoch: int,
    sources: list[SourceRecord],
    recipe_path: str,
    recipe_hash: str,
    key: SigningKey | None,
    siblings: Mapping[str, Sequence[TarEntry]] | None = None,
    where: str = "",
    provenance: dict[str, object] | None = None,
    config_yaml: bytes | None = None,
    namespace: str = "nanodistro",  # purl distro: formats.purl.DEFAULT_DISTRO
) -> BuiltPackage:
    """SBOM + SCA + ``write_apk`` for the package whose output is ``entries`` (from
    :func:`read_output`). ``siblings`` are the other packages' entries of the same build, by
    name, in recipe order; ``where`` names the output directory in errors."""
    where = where or spec.name
    sbom = package_sbom(
        name=spec.name,
        full_version=spec.full_version,
        arch=spec.arch,
        licenses=spec.licenses,
        copyright_text=spec.copyright_text,
        description=spec.description,
        sources=sources,
        recipe_path=recipe_path,
        recipe_commit=spec.commit,
        source_date_epoch=source_date_epoch,
        namespace=namespace,
    )
    # copies: setcap sets xattrs on our entries, which siblings may also be reading
    entries = with_sbom(
        [dataclasses.replace(e, xattrs=dict(e.xattrs)) for e in entries],
        sbom_path(spec.name, spec.full_version),
        sbom,
        mtime=source_date_epoch,
        where=where,
    )
    info, sca, scripts = describe_package(
        spec, entries, siblings=siblings, source_date_epoch=source_date_epoch
    )
    control = {
        "recipe_sha256": recipe_hash,
        "origin": spec.origin,
        "vendored": sca.vendored,
        **(provenance or {}),
    }
    try:
        apply_setcap(entries, spec.setcap, where=spec.filename)
        data = write_apk(
            info,
            entries,
            key=key,
            source_date_epoch=source_date_epoch,
            scripts=scripts,
            extra_control={
                NANODISTRO_CONTROL: (json.dumps(control, sort_keys=True, indent=1) + "\n").encode(),
                **({MELANGE_CONTROL: config_yaml} if config_yaml is not None else {}),
            },
        )
    except FormatError as error:
        raise BuildError(f"cannot package {spec.name}: {error}", where=where) from None
    return BuiltPackage(info=info, data=data, sca=sca, filename=spec.filename)


def _dep_name(dep: str) -> str:
    for op in ("<=", ">=", "~", "=", "<", ">"):
        if op in dep:
            return dep.split(op, 1)[0]
    return dep


def describe_package(
    spec: PackageSpec,
    entries: Sequence[TarEntry],
    *,
    siblings: Mapping[str, Sequence[TarEntry]] | None = None,
    source_date_epoch: int,
) -> tuple[PackageInfo, ScaResult, dict[str, bytes]]:
    """The ``.PKGINFO`` fields (sizes and hashes aside: ``write_apk`` adds them), SCA result
    and install scripts of the package ``spec`` makes of ``entries``: what the recipe says
    plus what SCA finds in the files. The control plane re-derives them from a worker's
    package (factory/remote), so only its files are the worker's word."""
    options = spec.options or PackageOptions()
    sca = analyze(
        entries,
        full_version=spec.full_version,
        options=ScaOptions(options.no_provides, options.no_depends, options.no_commands),
        siblings=siblings,
        declared=spec.dependencies.runtime,
    )
    deps = spec.dependencies
    provides = sorted(set(sca.provides) | set(deps.provides))
    # a dependency the package provides itself, automatically or through the recipe's
    # provides:, is dropped (melange removeSelfProvidedDeps)
    own = {_dep_name(p) for p in provides} | {spec.name}
    depends = sorted(d for d in set(sca.depends) | set(deps.runtime) if _dep_name(d) not in own)
    sca.origins = {d: paths for d, paths in sca.origins.items() if d in depends}
    info = PackageInfo(
        name=spec.name,
        version=spec.full_version,
        arch=spec.arch,
        description=spec.description,
        url=spec.url,
        license=" AND ".join(spec.licenses),
        origin=spec.origin,
        commit=spec.commit,
        builddate=source_date_epoch or None,
        depends=depends,
        provides=provides,
        replaces=sorted(set(deps.replaces)),
        provider_priority=_int(deps.provider_priority, "provider-priority"),
        replaces_priority=_int(deps.replaces_priority, "replaces-priority"),
    )
    scripts: dict[str, bytes] = {}
    if spec.scriptlets:
        for name in _SCRIPT_FIELDS:
            text = getattr(spec.scriptlets, name)
            if text:
                scripts[name.replace("_", "-")] = text.encode()
        trigger = spec.scriptlets.trigger
        if trigger and trigger.script:
            scripts["trigger"] = trigger.script.encode()
            info.triggers = list(trigger.paths)
    return info, sca, scripts
