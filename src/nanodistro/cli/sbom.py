"""CLI: ``nanodistro sbom TARGET`` — the SPDX 2.3 or CycloneDX 1.6 document of a package or image.

TARGET is an ``.apk`` file, an OCI image layout directory, or (with ``--repo``, or inside a
workspace) the name of a package in a repository, ``NAME`` or ``NAME=VERSION``. A package's SPDX
document is the one embedded in it; its CycloneDX document is made from that and ``.PKGINFO``
(builder/sbom.py). An image's SPDX documents are the layout's ``sboms/``; its CycloneDX
document is made from the layout's layers (image/cyclonedx.py), the same bytes the build wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from nanodistro.errors import ConfigError, FormatError, RepositoryError

FORMATS = ("spdx", "cyclonedx")


def _workspace_name(start: Path) -> str | None:
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = find_workspace(start)
    return load_workspace(found).name if found is not None else None


def _distro(start: Path) -> str:
    """The purl distro for packages without an SBOM: the workspace's name, else the default."""
    from nanodistro.formats.purl import distro_name

    return distro_name(_workspace_name(start))


def package_document(path: Path, fmt: str, distro: str) -> bytes:
    from nanodistro.builder.sbom import apk_cyclonedx, apk_spdx
    from nanodistro.errors import ChecksumError
    from nanodistro.formats.apk import read_apk

    data = path.read_bytes()
    pkg = read_apk(data, where=str(path))
    if pkg.datahash_ok is False:
        raise ChecksumError("data member sha256 differs from .PKGINFO datahash", where=str(path))
    if fmt == "spdx":
        return apk_spdx(pkg, distro=distro)
    return apk_cyclonedx(pkg, data, distro=distro)


def _stored(layout: Path, name: str) -> Path:
    """``sboms/NAME`` of the layout, else of its ``latest`` build (a factory layout keeps each
    build's SBOMs per digest); the path may not exist."""
    path = layout / "sboms" / name
    if not path.is_file():
        from nanodistro.image.sbomstore import sbom_dir
        from nanodistro.image.tags import tag_digest

        digest = tag_digest(layout, "latest")
        if digest is not None:
            path = sbom_dir(layout, digest) / name
    return path


def image_document(layout: Path, fmt: str, arch: str | None, distro: str | None = None) -> bytes:
    """``distro``: the workspace's name, as the image build used it (image/sbom.image_distro)."""
    from nanodistro.formats import cyclonedx
    from nanodistro.image.cyclonedx import arch_bom, facts_from_layout, index_bom

    archs, index = facts_from_layout(layout, distro=distro)
    names = [a.apk_arch for a in archs]
    if arch is None:
        if len(archs) != 1:
            raise ConfigError(
                f"the layout holds {', '.join(names) or 'no images'}: choose one with --arch "
                "(or --arch index)",
                where=str(layout),
            )
        arch = names[0]
    if arch != "index" and arch not in names:
        raise ConfigError(
            f"no {arch} image (has {', '.join(names)}; or --arch index)", where=str(layout)
        )
    if fmt == "spdx":
        path = _stored(layout, f"sbom-{arch}.spdx.json")
        if not path.is_file():
            raise FormatError("the layout has no SPDX document for this image", where=str(path))
        return path.read_bytes()
    # the document the build wrote, when the layout keeps it: it knows the purl distro the
    # build was given (a layout copied out of its workspace does not)
    stored = _stored(layout, f"sbom-{arch}.cdx.json")
    if stored.is_file():
        return stored.read_bytes()
    if arch == "index":
        return cyclonedx.to_json(index_bom(index))
    return cyclonedx.to_json(arch_bom(next(a for a in archs if a.apk_arch == arch)))


def repository_package(repo: Path, spec: str, arch: str) -> Path:
    """The ``.apk`` of ``NAME`` (its newest version) or ``NAME=VERSION`` in ``repo/<arch>``."""
    from nanodistro.formats.apkindex import read_index
    from nanodistro.formats.version import compare

    name, _, version = spec.partition("=")
    index_path = repo / arch / "APKINDEX.tar.gz"
    if not index_path.is_file():
        raise RepositoryError(f"no {arch} index", where=str(index_path))
    index = read_index(index_path.read_bytes(), where=str(index_path))
    matches = [p for p in index.packages if p.name == name and version in ("", p.version)]
    if not matches:
        wanted = f"{name}={version}" if version else name
        raise RepositoryError(f"no package {wanted} in the {arch} index", where=str(index_path))
    best = matches[0]
    for info in matches[1:]:
        if compare(info.version, best.version) > 0:
            best = info
    return repo / arch / best.filename


def register(app: typer.Typer) -> None:
    @app.command("sbom")
    def sbom_command(
        target: str = typer.Argument(
            ..., help="An .apk, an OCI layout directory, or NAME[=VERSION] in --repo."
        ),
        fmt: str = typer.Option("spdx", "--format", help="spdx (SPDX 2.3) or cyclonedx (1.6)."),
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
        arch: str | None = typer.Option(
            None, "--arch", help="Image arch (or 'index') / repository arch (default: this one)."
        ),
        repo: Path | None = typer.Option(
            None, "--repo", help="Repository for NAME targets (default: the workspace's)."
        ),
    ) -> None:
        """Print or write the SBOM of a package or image (SPDX 2.3 or CycloneDX 1.6 JSON)."""
        from nanodistro.util.atomic import atomic_write_bytes
        from nanodistro.util.host import host_arch

        if fmt not in FORMATS:
            raise ConfigError(f"expected one of {', '.join(FORMATS)}", field="--format")
        path = Path(target)
        if path.is_dir() and (path / "index.json").is_file():
            document = image_document(path, fmt, arch, _workspace_name(path))
        elif path.is_file():
            document = package_document(path, fmt, _distro(path))
        elif path.exists() or "/" in target or target.endswith(".apk"):
            raise ConfigError("not an .apk file or an OCI layout directory", where=target)
        else:
            if repo is None:
                from nanodistro.factory.workspace import find_workspace, load_workspace

                found = find_workspace(Path.cwd())
                if found is None:
                    raise ConfigError(
                        "no such file; a package name needs --repo (or a workspace)",
                        where=target,
                    )
                repo = load_workspace(found).packages_dir
            apk = repository_package(repo, target, arch or host_arch())
            document = package_document(apk, fmt, _distro(repo))
        if out is None:
            sys.stdout.buffer.write(document)
            sys.stdout.flush()
        else:
            atomic_write_bytes(out, document)
