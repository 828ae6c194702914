"""Turn one package's output directory into a signed ``.apk`` (melange ``EmitPackage``, §7.7).

Order: embed the SPDX SBOM, run SCA over the directory, merge the recipe's ``dependencies``
with what SCA found (sorted, deduplicated, self-provided deps removed), then write the package
with every mtime at SOURCE_DATE_EPOCH and owners fixed to root (reproducible by construction).
A ``.nanodistro.json`` control file records the recipe hash (used to skip unchanged rebuilds)
and the toolchain identity; apk-tools ignores unknown dot-files in the control segment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.builder.sbom import package_sbom, sbom_path
from nanodistro.builder.sca import ScaOptions, ScaResult, analyze
from nanodistro.builder.setcap import apply_setcap
from nanodistro.builder.sources import SourceRecord
from nanodistro.errors import BuildError, FormatError
from nanodistro.formats.apk import write_apk
from nanodistro.formats.pkginfo import PackageInfo, apk_filename
from nanodistro.formats.tarball import entries_from_directory
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


def emit_package(
    spec: PackageSpec,
    outdir: Path,
    *,
    source_date_epoch: int,
    sources: list[SourceRecord],
    recipe_path: str,
    recipe_hash: str,
    key: SigningKey | None,
    provenance: dict[str, object] | None = None,
    config_yaml: bytes | None = None,
    namespace: str = "unknown",
) -> BuiltPackage:
    """SBOM + SCA + ``write_apk`` for the package whose files are in ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    sbom = outdir / sbom_path(spec.name, spec.full_version)
    # directories we create get fixed modes (mkdir would apply the caller's umask)
    created = [d for d in [sbom.parent, *sbom.parent.parents] if d.is_relative_to(outdir)]
    created = [d for d in created if d != outdir and not d.exists()]
    sbom.parent.mkdir(parents=True, exist_ok=True)
    for directory in created:
        directory.chmod(0o755)
    sbom.write_bytes(
        package_sbom(
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
    )
    sbom.chmod(0o644)
    options = spec.options or PackageOptions()
    sca = analyze(
        outdir,
        full_version=spec.full_version,
        options=ScaOptions(options.no_provides, options.no_depends, options.no_commands),
    )
    deps = spec.dependencies
    provides = sorted(set(sca.provides) | set(deps.provides))
    own = {p.split("=", 1)[0] for p in provides} | {spec.name}
    depends = sorted(d for d in set(sca.depends) | set(deps.runtime) if _dep_name(d) not in own)
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
    control = {
        "recipe_sha256": recipe_hash,
        "origin": spec.origin,
        "vendored": sca.vendored,
        **(provenance or {}),
    }
    try:
        # host xattrs (SELinux labels, ...) never enter a package; capabilities come from setcap
        entries = entries_from_directory(outdir, mtime=source_date_epoch, with_xattrs=False)
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
        raise BuildError(f"cannot package {spec.name}: {error}", where=str(outdir)) from None
    return BuiltPackage(info=info, data=data, sca=sca, filename=spec.filename)


def _dep_name(dep: str) -> str:
    for op in ("<=", ">=", "~", "=", "<", ">"):
        if op in dep:
            return dep.split(op, 1)[0]
    return dep
