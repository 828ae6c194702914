"""Build a whole workspace: every recipe into the signed repository, every image, smoke tests.

This is what ``make run`` does for ``examples/``: keys (generated when there are none) -> recipes
in dependency order, each published to ``out/packages/<arch>/`` as soon as it built and passed
its tests -> every image config into an OCI layout ``out/images/<name>/`` (SBOMs inside, under
``sboms/``) -> each image's smoke test in a real container runtime (factory/smoke.py).

Nothing is redone that has not changed: the builder skips a recipe whose package is already
published from the same recipe bytes, and an image is rebuilt only when its inputs changed — the
config bytes and the exact packages the resolver picks (their identities), recorded in
``out/images/<name>.inputs.json`` beside the layout. One failing recipe or image is reported and
the rest goes on; an image that needs a package whose recipe failed is skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory.smoke import SmokeResult, run_smoke_test, smoke_test_from_annotations
from nanodistro.factory.workspace import Workspace
from nanodistro.util.atomic import atomic_write_bytes
from nanodistro.util.host import host_arch
from nanodistro.util.progress import Progress

INPUTS_SUFFIX = ".inputs.json"
# Raised whenever the assembler makes different bytes from the same inputs, so images built
# before are rebuilt, not kept. 2: run-as as numeric uid:gid, accounts' home directories.
INPUTS_FORMAT = 2


@dataclass
class PackageReport:
    name: str
    version: str
    arch: str
    origin: str
    size: int  # bytes of the .apk
    installed_size: int
    path: str
    license: str = ""


@dataclass
class RecipeReport:
    name: str
    version: str
    arch: str
    status: str  # built | unchanged | failed
    seconds: float = 0.0
    error: str = ""
    packages: list[str] = field(default_factory=list)  # package names the recipe makes
    warnings: list[str] = field(default_factory=list)


@dataclass
class SmokeReport:
    status: str  # passed | failed | none | error
    runtime: str = ""
    output: str = ""
    expected: str = ""
    detail: str = ""


@dataclass
class ImageReport:
    name: str
    config: str
    status: str  # built | unchanged | failed | skipped
    layout: str = ""
    digest: str = ""
    size: int = 0  # compressed: config + manifest + layers of the host arch's image
    unpacked_size: int = 0  # the root filesystem's bytes (uncompressed layers)
    packages: list[str] = field(default_factory=list)  # name-version, install order
    sboms: list[str] = field(default_factory=list)
    smoke: SmokeReport = field(default_factory=lambda: SmokeReport("none"))
    debian: DebianEquivalent | None = None  # the same programs on a Debian base, for scale
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("built", "unchanged") and self.smoke.status in ("passed", "none")


@dataclass
class CatalogReport:
    workspace: str
    repository: str
    keys_dir: str
    public_key: str
    images_dir: str
    archs: list[str]
    key_generated: bool = False
    recipes: list[RecipeReport] = field(default_factory=list)
    packages: list[PackageReport] = field(default_factory=list)
    images: list[ImageReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.recipes) and all(i.ok for i in self.images)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


# ------------------------------------------------------------------------------------ keys


def ensure_keys(workspace: Workspace, progress: Progress) -> tuple[Path, bool]:
    """The workspace's private key; generated (with its .pub) when the keys dir has none."""
    from nanodistro.trust.keys import generate_key

    ensure_ecdsa_key(workspace, progress)
    existing = workspace.signing_key()
    if existing is not None:
        return existing, False
    workspace.keys_dir.mkdir(parents=True, exist_ok=True)
    progress(f"keys: generating {workspace.key_name} in {workspace.keys_dir}")
    private, _public = generate_key(workspace.key_name, workspace.keys_dir)
    return private, True


def ensure_ecdsa_key(workspace: Workspace, progress: Progress) -> Path:
    """The workspace's ``keys/cosign.key`` (+ ``cosign.pub``), generated when missing: it signs
    package provenance, images and attestations (password: $COSIGN_PASSWORD, empty if unset)."""
    from nanodistro.trust.cosignkey import generate_key_pair

    existing = workspace.ecdsa_key()
    if existing is not None:
        return existing
    progress(f"keys: generating cosign.key in {workspace.keys_dir}")
    private, _public = generate_key_pair(workspace.keys_dir, "cosign")
    return private


def provenance_signer(workspace: Workspace) -> Any:
    """The ``EcdsaSigner`` of ``keys/cosign.key`` (None when the workspace has none)."""
    from nanodistro.trust.cosignkey import load_signer

    path = workspace.ecdsa_key()
    return load_signer(path) if path is not None else None


# --------------------------------------------------------------------------------- recipes


def _toolchain(workspace: Workspace) -> Any:
    from nanodistro.builder.runners import DEFAULT_TOOLCHAIN_PROVIDES, Toolchain

    root = workspace.toolchain_root
    # nanodistro.toml names the toolchain's /usr; the sandbox binds /usr, /bin, /lib... of the
    # root that contains it.
    host_root = root.parent if root.name == "usr" else root
    # Build pipelines need the usual tools (wget, busybox, ...): the workspace's names are added
    # to the defaults. Images never see the toolchain; they take every package from the catalog.
    provides = DEFAULT_TOOLCHAIN_PROVIDES | frozenset(workspace.toolchain_provides)
    return Toolchain(host_root=host_root, provides=provides)


def _recipe_packages(path: Path, arch: str) -> tuple[str, str, list[str]]:
    """(name, full version, package names) of a recipe, without building it."""
    from nanodistro.builder.compile import compile_recipe
    from nanodistro.recipe.model import load_recipe

    recipe = load_recipe(path)
    compiled = compile_recipe(recipe, arch)
    return (
        recipe.package.name,
        recipe.package.full_version,
        [p.name for p in compiled.packages],
    )


def build_catalog_recipes(
    workspace: Workspace, arch: str, key_path: Path, progress: Progress
) -> list[RecipeReport]:
    """Build every recipe for ``arch`` in dependency order, publishing each that succeeds."""
    from nanodistro.builder.orchestrate import BuildConfig, build_order, build_recipes
    from nanodistro.trust.keys import load_keyring, load_signing_key

    key = load_signing_key(key_path)
    keyring = dict(load_keyring(workspace.keys_dir))
    keyring.setdefault(key.keyname, key.public_pem())
    config = BuildConfig(
        arch=arch,
        repo=workspace.packages_dir,
        key=key,
        keyring=keyring,
        source_cache=workspace.source_cache,
        toolchain=_toolchain(workspace),
        mirrors=dict(workspace.mirrors),
        namespace=workspace.name,
        provenance_key=provenance_signer(workspace),
    )
    reports: list[RecipeReport] = []
    failed_packages: dict[str, str] = {}  # package name -> the recipe that failed to make it
    loadable: list[Path] = []
    for path in workspace.recipe_files():
        try:
            _recipe_packages(path, arch)
        except NanodistroError as error:  # a broken recipe is reported; the others still build
            name = path.name.removesuffix(".yaml")
            reports.append(RecipeReport(name, "", arch, "failed", error=str(error)))
            progress(f"FAILED {name} ({arch}): {str(error).splitlines()[0]}")
            failed_packages[name] = name
        else:
            loadable.append(path)
    for path in build_order(loadable, arch):
        name, version, names = _recipe_packages(path, arch)
        report = RecipeReport(
            name=name, version=version, arch=arch, status="failed", packages=names
        )
        started = time.monotonic()
        try:
            results = build_recipes([path], config, progress=progress)
        except NanodistroError as error:
            report.error = str(error)
            blockers = sorted({r for p, r in failed_packages.items() if p in str(error)} - {name})
            if blockers:
                report.error = f"needs {', '.join(blockers)} (failed): {report.error}"
            for package in names:
                failed_packages[package] = name
            progress(f"FAILED {name}-{version} ({arch}): {report.error.splitlines()[0]}")
        else:
            result = results[0]
            report.status = "unchanged" if result.skipped else "built"
            report.warnings = list(result.warnings)
        report.seconds = round(time.monotonic() - started, 1)
        reports.append(report)
    return reports


def repository_packages(
    workspace: Workspace, arch: str, recipes: list[RecipeReport]
) -> list[PackageReport]:
    """The current packages of the catalog's recipes, as published in the repository."""
    from nanodistro.formats.apk import read_apk
    from nanodistro.formats.pkginfo import apk_filename

    packages: list[PackageReport] = []
    for recipe in recipes:
        for name in recipe.packages:
            path = workspace.packages_dir / arch / apk_filename(name, recipe.version)
            if not path.is_file():
                continue
            try:
                info = read_apk(path.read_bytes(), where=str(path)).info
            except NanodistroError:
                continue
            packages.append(
                PackageReport(
                    name=info.name,
                    version=info.version,
                    arch=arch,
                    origin=info.origin or recipe.name,
                    size=path.stat().st_size,
                    installed_size=info.installed_size or 0,
                    path=str(path),
                    license=info.license,
                )
            )
    return packages


# ---------------------------------------------------------------------------------- images


def _image_request(workspace: Workspace, config_path: Path) -> Any:
    from nanodistro.image.build import BuildRequest
    from nanodistro.imageconfig import load_config

    loaded = load_config(config_path)
    return BuildRequest(
        loaded=loaded,
        archs=list(workspace.archs),
        repositories=[str(workspace.packages_dir)],
        keyring_paths=[workspace.keys_dir],
        distro=workspace.name,  # the purl distro its packages carry
    )


def _inputs_digest(config_path: Path, request: Any, progress: Progress) -> tuple[str, list[str]]:
    """What an image is made of: the config files' bytes and the resolved package identities."""
    from nanodistro.image.build import lock_image

    lock = lock_image(request, progress=None)
    digest = hashlib.sha256(b"nanodistro-image-inputs/1\0")
    for file in [config_path, *request.loaded.files]:
        digest.update(str(file.name).encode() + b"\0" + Path(file).read_bytes() + b"\0")
    resolved = sorted(f"{p.architecture} {p.name}-{p.version} {p.checksum}" for p in lock.packages)
    for line in resolved:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest(), resolved


def _layout_blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hexdigest = digest.partition(":")
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def _host_manifest(layout: Path) -> tuple[dict[str, Any], int] | None:
    """The manifest of the host arch's image in a layout (following nested indexes), and its
    size."""
    # imported here, as load_config is: importing imageconfig loads its pydantic models
    from nanodistro.imageconfig.arch import APK_TO_OCI

    top = json.loads((layout / "index.json").read_text())
    pending = list(top.get("manifests", []))
    host = host_arch()
    arch = APK_TO_OCI.get(host, host).split("/", 1)[0]  # OCI "architecture", no variant
    while pending:
        descriptor = pending.pop(0)
        document = json.loads(_layout_blob(layout, descriptor["digest"]))
        if "manifests" in document:
            pending.extend(document["manifests"])
            continue
        platform = descriptor.get("platform", {})
        if not platform or platform.get("architecture") == arch:
            return document, int(descriptor["size"])
    return None


def layout_sizes(layout: Path) -> tuple[int, int]:
    """(compressed, unpacked) bytes of the host arch's image in an OCI layout: what a pull
    transfers (manifest, config, layers) and what the root filesystem's tar streams hold."""
    found = _host_manifest(layout)
    if found is None:
        return 0, 0
    manifest, manifest_size = found
    compressed = manifest_size + int(manifest["config"]["size"])
    unpacked = 0
    for layer in manifest["layers"]:
        compressed += int(layer["size"])
        data = _layout_blob(layout, layer["digest"])
        gzipped = str(layer["mediaType"]).endswith("gzip")
        unpacked += len(gzip.decompress(data)) if gzipped else len(data)
    return compressed, unpacked


def _smoke(image: ImageReport, request: Any, progress: Progress) -> SmokeReport:
    config = request.loaded.config
    try:
        test = smoke_test_from_annotations(dict(config.annotations), where=image.config)
    except NanodistroError as error:
        return SmokeReport("error", detail=str(error))
    if test is None:
        return SmokeReport("none")
    progress(f"smoke test {image.name}: {test.args}")
    try:
        result: SmokeResult = run_smoke_test(
            Path(image.layout), "latest", test, config.entrypoint.argv()
        )
    except NanodistroError as error:
        return SmokeReport("error", detail=str(error))
    return SmokeReport(
        "passed" if result.passed else "failed",
        runtime=result.runtime,
        output=result.output,
        expected=result.expected,
        detail=result.detail,
    )


def build_catalog_image(
    workspace: Workspace,
    config_path: Path,
    progress: Progress,
    *,
    blocked_by: dict[str, str] | None = None,
    debian: DebianArchive | None = None,
) -> ImageReport:
    """Build one image unless its inputs are unchanged, then run its smoke test."""
    from nanodistro.image.build import build_image, write_result

    name = config_path.name.removesuffix(".yaml").removesuffix(".yml")
    layout = workspace.image_out_dir / name
    record_path = workspace.image_out_dir / f"{name}{INPUTS_SUFFIX}"
    image = ImageReport(name=name, config=str(config_path), status="failed", layout=str(layout))
    started = time.monotonic()
    try:
        request = _image_request(workspace, config_path)
        wanted = set(request.loaded.config.all_packages())
        blockers = sorted({r for p, r in (blocked_by or {}).items() if p in wanted})
        if blockers:
            image.status = "skipped"
            image.error = f"needs packages of failed recipes: {', '.join(blockers)}"
            return image
        inputs, resolved = _inputs_digest(config_path, request, progress)
        record = _read_record(record_path)
        if (
            record.get("inputs") == inputs
            and record.get("format") == INPUTS_FORMAT
            and (layout / "index.json").is_file()
        ):
            image.status = "unchanged"
            image.digest = str(record.get("digest", ""))
            image.packages = list(record.get("packages", []))
            progress(f"image {name}: inputs unchanged, keeping {image.digest[:19]}")
        else:
            progress(f"image {name}: building from {len(resolved)} packages")
            result = build_image(request, progress=progress)
            write_result(result, layout)
            image.status = "built"
            image.digest = result.digest
            image.packages = [
                f"{p.apk.name}-{p.apk.version}" for p in result.images[0].root.packages
            ]
            atomic_write_bytes(
                record_path,
                json.dumps(
                    {
                        "format": INPUTS_FORMAT,
                        "inputs": inputs,
                        "digest": result.digest,
                        "resolved": resolved,
                        "packages": image.packages,
                    },
                    indent=2,
                    sort_keys=True,
                ).encode()
                + b"\n",
            )
        image.size, image.unpacked_size = layout_sizes(layout)
        image.sboms = sorted(str(p) for p in (layout / "sboms").glob("*"))
        image.smoke = _smoke(image, request, progress)
        compare = request.loaded.config.annotations.get(COMPARE_DEBIAN, "").split()
        if compare and debian is not None:
            image.debian = debian.equivalent(compare)
    except NanodistroError as error:
        image.status = "failed"
        image.error = str(error)
        progress(f"FAILED image {name}: {image.error.splitlines()[0]}")
    finally:
        image.seconds = round(time.monotonic() - started, 1)
    if image.smoke.status in ("failed", "error"):
        progress(f"FAILED smoke test {name}: {image.smoke.detail or image.smoke.output!r}")
    return image


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------------ all


def run_catalog(workspace: Workspace, *, progress: Progress | None = None) -> CatalogReport:
    """Keys, every recipe for every arch, every image with its smoke test; never raises for a
    failing recipe or image (see the report), only for a broken workspace or key."""
    say = progress or (lambda _m: None)
    started = time.monotonic()
    key_path, generated = ensure_keys(workspace, say)
    report = CatalogReport(
        workspace=str(workspace.root),
        repository=str(workspace.packages_dir),
        keys_dir=str(workspace.keys_dir),
        public_key=str(key_path.with_name(key_path.name + ".pub")),
        images_dir=str(workspace.image_out_dir),
        archs=list(workspace.archs),
        key_generated=generated,
    )
    failed: dict[str, str] = {}
    for arch in workspace.archs:
        recipes = build_catalog_recipes(workspace, arch, key_path, say)
        report.recipes.extend(recipes)
        report.packages.extend(repository_packages(workspace, arch, recipes))
        for recipe in recipes:
            if recipe.status == "failed":
                failed.update(dict.fromkeys(recipe.packages, recipe.name))
    debian: DebianArchive | None = None
    if any(COMPARE_DEBIAN in path.read_text(errors="replace") for path in workspace.image_files()):
        debian = DebianArchive.from_host()
    for config_path in workspace.image_files():
        report.images.append(
            build_catalog_image(workspace, config_path, say, blocked_by=failed, debian=debian)
        )
    report.seconds = round(time.monotonic() - started, 1)
    return report


# ------------------------------------------------------------------ Debian-based equivalent

COMPARE_DEBIAN = "dev.nanodistro.compare.debian"


@dataclass
class DebianEquivalent:
    """A Debian-based image with the same programs: the ``minbase`` system (every package of
    priority ``required``, as debootstrap --variant=minbase and the debian images install them)
    plus ``packages`` and their Depends/Pre-Depends closure, sized from the host's apt metadata."""

    packages: list[str]
    closure: int  # package count
    installed_size: int  # bytes (sum of Installed-Size)


class DebianArchive:
    """The host's apt package metadata (``apt-cache dumpavail``), parsed once."""

    def __init__(self, text: str, arch: str) -> None:
        self.sizes: dict[str, int] = {}
        self.depends: dict[str, list[list[str]]] = {}
        self.providers: dict[str, list[str]] = {}
        self.required: list[str] = []
        for stanza in text.split("\n\n"):
            fields = _control_fields(stanza)
            name = fields.get("Package")
            if not name or name in self.sizes or fields.get("Architecture") not in (arch, "all"):
                continue
            self.sizes[name] = int(fields.get("Installed-Size", "0") or 0) * 1024
            groups = ", ".join(v for k in ("Pre-Depends", "Depends") if (v := fields.get(k)))
            self.depends[name] = [
                [alt.split()[0].split(":")[0] for alt in group.split("|") if alt.strip()]
                for group in groups.split(",")
                if group.strip()
            ]
            for provided in fields.get("Provides", "").split(","):
                if provided.strip():
                    self.providers.setdefault(provided.split()[0], []).append(name)
            if fields.get("Priority") == "required" or fields.get("Essential") == "yes":
                self.required.append(name)

    @classmethod
    def from_host(cls) -> DebianArchive | None:
        import shutil
        import subprocess

        if shutil.which("apt-cache") is None or shutil.which("dpkg") is None:
            return None
        try:
            arch = subprocess.run(
                ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
            ).stdout.strip()
            dump = subprocess.run(
                ["apt-cache", "dumpavail"], capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        archive = cls(dump, arch)
        return archive if archive.required else None

    def equivalent(self, packages: list[str]) -> DebianEquivalent | None:
        chosen: set[str] = set()
        pending = [*self.required, *packages]
        while pending:
            name = self._real(pending.pop(), chosen)
            if name is None or name in chosen:
                continue
            chosen.add(name)
            for group in self.depends.get(name, []):
                # An alternative already chosen satisfies the group; else the smallest one (so
                # the Debian figure is a lower bound: usr-is-merged rather than usrmerge + perl).
                picked = next((a for a in group if self._real(a, chosen) in chosen), None)
                pending.append(picked or min(group, key=self._size))
        if not all(self._real(p, chosen) in chosen for p in packages):
            return None
        return DebianEquivalent(
            packages=list(packages),
            closure=len(chosen),
            installed_size=sum(self.sizes[n] for n in chosen),
        )

    def _size(self, name: str) -> int:
        real = self._real(name, set())
        return self.sizes[real] if real else 1 << 62  # unknown names are never picked

    def _real(self, name: str, chosen: set[str]) -> str | None:
        if name in self.sizes:
            return name
        providers = self.providers.get(name, [])
        if not providers:
            return None
        smallest = min(providers, key=lambda p: self.sizes[p])
        return next((p for p in providers if p in chosen), smallest)


def _control_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields
