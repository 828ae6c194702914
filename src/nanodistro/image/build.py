"""Image build: config -> resolved packages -> root -> layers -> OCI images -> index (+ SBOMs).

Mirrors apko's pipeline (pkg/build/build_implementation.go ``buildImage``, reference/formats.md
§8.2-§8.6). Engines do not print: progress goes to the optional callback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.errors import ChecksumError, FetchError, ImageError
from nanodistro.formats.oci import (
    ANNOTATION_CREATED,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    Descriptor,
    HistoryEntry,
    ImageConfigDoc,
    Platform,
    canonical_json,
    image_index,
    image_manifest,
)
from nanodistro.image.accounts import resolve_run_as
from nanodistro.image.apkfile import ApkFile, open_apk
from nanodistro.image.install import AssembledRoot, assemble_root
from nanodistro.image.layers import Layer, build_layers
from nanodistro.image.lock import LockedPackage, LockFile, config_checksum
from nanodistro.image.oci_layout import write_layout_archive, write_layout_dir
from nanodistro.imageconfig.arch import Arch
from nanodistro.imageconfig.load import LoadedConfig, resolve_local
from nanodistro.resolve import (
    RepositoryClient,
    RepositoryRef,
    package_location,
    parse_repository,
    solve,
)
from nanodistro.resolve.repositories import refuse_unbound_data
from nanodistro.util.atomic import atomic_write_bytes
from nanodistro.util.progress import Progress
from nanodistro.util.timestamps import rfc3339

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin"
DEFAULT_SSL_CERT_FILE = "/etc/ssl/certs/ca-certificates.crt"
OPEN_THREADS = min(4, os.cpu_count() or 1)
IMAGE_AUTHOR = "nanodistro"  # apko writes "github.com/chainguard-dev/apko" here


@dataclass
class BuildRequest:
    loaded: LoadedConfig
    archs: list[str] | None = None
    repositories: list[str] = field(default_factory=list)  # extra --repo entries
    keyring_paths: list[Path] = field(default_factory=list)  # extra --keyring dirs/files
    lock: LockFile | None = None
    source_date_epoch: int | None = None
    cache_dir: Path | None = None
    ref_name: str = "latest"
    #: Accept a repository index older than the one accepted before (resolve.replay).
    allow_downgrade: bool = False
    #: purl distro for installed packages without an SBOM of their own (the workspace's name,
    #: as its packages carry it); None: the image's os-release ID, else formats.purl's default
    distro: str | None = None


@dataclass
class FetchedPackage:
    apk: ApkFile
    url: str
    repository: str


@dataclass
class ArchImage:
    arch: Arch
    root: AssembledRoot
    layers: list[Layer]
    config: bytes
    manifest: bytes
    descriptor: Descriptor
    build_date: int


@dataclass
class BuildResult:
    images: list[ArchImage]
    index: bytes
    index_descriptor: Descriptor
    blobs: dict[str, bytes]
    fetched: dict[str, list[FetchedPackage]]
    sboms: dict[str, bytes] = field(default_factory=dict)
    ref_name: str = "latest"

    @property
    def digest(self) -> str:
        return self.index_descriptor.digest


# ---- keys and repositories ------------------------------------------------------------------


def load_config_keyring(
    request: BuildRequest, client: RepositoryClient | None = None
) -> dict[str, bytes]:
    """``contents.keyring`` (files relative to the config, or URLs) plus ``--keyring`` paths.

    Entries are read with ``client`` when given (setting one up loads the CA bundle, ~30 ms)."""
    keyring: dict[str, bytes] = {}
    entries = request.loaded.config.contents.keyring
    with contextlib.ExitStack() as stack:
        if client is None and entries:
            client = stack.enter_context(RepositoryClient({}))
        for entry in entries:
            location = request.loaded.resolve_path(entry)
            name = location.rstrip("/").rsplit("/", 1)[-1]
            assert client is not None
            try:
                keyring[name] = client.read(location)
            except FetchError as error:
                raise ImageError(
                    f"cannot load keyring entry {entry!r}: {error.message}",
                    where=str(request.loaded.path or ""),
                    field="contents.keyring",
                ) from None
    if request.keyring_paths:
        from nanodistro.trust.keys import load_keyring  # its key codecs only when used

        keyring.update(load_keyring(request.keyring_paths))
    return keyring


def build_repository_entries(request: BuildRequest) -> list[str]:
    base = request.loaded.base_dir
    entries = [resolve_local(r, base) for r in request.loaded.config.build_repositories()]
    extra = [resolve_local(r, Path.cwd()) for r in request.repositories]
    return [*extra, *(e for e in entries if e not in extra)]


def resolve_arch(
    request: BuildRequest,
    arch: Arch,
    keyring: Mapping[str, bytes],
    progress: Progress | None,
    client: RepositoryClient | None = None,
) -> list[FetchedPackage]:
    """The packages of one arch, fetched and verified, in install order."""
    if request.lock is not None:
        return _from_lock(
            request.lock,
            arch,
            progress,
            client or RepositoryClient(keyring, allow_downgrade=request.allow_downgrade),
            config_dir=request.loaded.base_dir,
        )
    entries = build_repository_entries(request)
    if not entries:
        raise ImageError(
            "no repositories configured (contents.repositories or --repo)",
            where=str(request.loaded.path or ""),
        )
    own = client is None
    client = client or RepositoryClient(
        keyring, progress=progress, allow_downgrade=request.allow_downgrade
    )
    try:
        repos = [parse_repository(e, where="contents.repositories") for e in entries]
        universe = client.load_universe(repos, arch.apk)  # signature-checked indexes
        resolution = solve(universe, request.loaded.config.all_packages())
        # Packages are read in order and verified on a small pool: inflating and hashing
        # release the GIL. Errors surface in install order, as a serial loop would raise them.
        opened: list[tuple[Future[ApkFile], str, RepositoryRef]] = []
        with ThreadPoolExecutor(max_workers=OPEN_THREADS) as pool:
            try:
                for resolved in resolution.packages:
                    info = resolved.candidate.info
                    location = package_location(resolved.repository, arch.apk, info)
                    if progress:
                        progress(f"install {info.name}-{info.version} ({arch.apk})")
                    data = _cached_read(client, location, info.checksum, request.cache_dir)
                    if info.file_size is not None and len(data) != info.file_size:
                        raise ChecksumError(
                            f"size {len(data)} differs from the index ({info.file_size})",
                            where=location,
                        )
                    future = pool.submit(
                        open_apk, data, where=location, expected_identity=info.checksum
                    )
                    opened.append((future, location, resolved.repository))
            except BaseException:
                for future, _, _ in opened:
                    future.result()  # an earlier package's error comes first
                raise
            fetched = []
            for future, loc, repo in opened:
                apk = future.result()  # open_apk checked identity and any datahash
                refuse_unbound_data(apk.info, where=loc, legacy=repo.legacy)
                fetched.append(FetchedPackage(apk, loc, str(repo)))
            return fetched
    finally:
        if own:
            client.close()


def _cached_read(
    client: RepositoryClient, location: str, identity: str | None, cache_dir: Path | None
) -> bytes:
    """Package bytes, from ``cache_dir`` when a copy with this identity is there."""
    if cache_dir is None or not identity or not location.startswith(("http://", "https://")):
        return client.read(location)
    safe = identity.replace("/", "_").replace("+", "-")
    cached = cache_dir / f"{location.rsplit('/', 1)[-1]}.{safe}"
    if cached.is_file():
        return cached.read_bytes()  # identity is checked by the caller like any other read
    data = client.read(location)
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cached, data)
    return data


def _locked_location(url: str, lock: LockFile, config_dir: Path) -> str:
    """Relative lock URLs are relative to the lock file's directory or the config's."""
    if "://" in url or url.startswith("/"):
        return url
    for base in (lock.base_dir, config_dir):
        if base is not None:
            resolved = resolve_local(url, base)
            if Path(resolved).exists():
                return resolved
    return resolve_local(url, lock.base_dir or config_dir)


def _from_lock(
    lock: LockFile,
    arch: Arch,
    progress: Progress | None,
    client: RepositoryClient,
    *,
    config_dir: Path,
) -> list[FetchedPackage]:
    locked = lock.for_arch(arch.apk)
    if not locked:
        raise ImageError(f"the lock file has no packages for {arch.apk}")
    fetched = []
    for item in locked:
        if progress:
            progress(f"fetch {item.name}-{item.version} ({arch.apk}, locked)")
        url = _locked_location(item.url, lock, config_dir)
        try:
            data = client.read(url)
        except FetchError as error:
            raise ImageError(
                f"locked package {item.name}-{item.version} is gone: {error.message}",
                where=item.url,
            ) from None
        apk = open_apk(data, where=url)
        item.check(apk, where=url)
        fetched.append(FetchedPackage(apk, item.url, item.repository))
    return fetched


# ---- OCI documents --------------------------------------------------------------------------


def _vcs(vcs_url: str) -> dict[str, str]:
    if not vcs_url:
        return {}
    url, sep, revision = vcs_url.rpartition("@")
    if not sep or "/" in revision:
        return {ANNOTATION_SOURCE: vcs_url}
    return {ANNOTATION_SOURCE: url, ANNOTATION_REVISION: revision}


def image_annotations(request: BuildRequest, created: str) -> dict[str, str]:
    config = request.loaded.config
    return {**config.annotations, **_vcs(config.vcs_url), ANNOTATION_CREATED: created}


def environment(request: BuildRequest) -> list[str]:
    env = dict(request.loaded.config.environment)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("SSL_CERT_FILE", DEFAULT_SSL_CERT_FILE)
    return [f"{k}={v}" for k, v in sorted(env.items())]


def _history_comment(count: int, annotations: Mapping[str, str]) -> str:
    title = annotations.get("org.opencontainers.image.title")
    vendor = annotations.get("org.opencontainers.image.vendor")
    if title and vendor:
        return f"{title} by {vendor}"
    # apko: "This is an apko single-layer image"
    return "This is a nanodistro single-layer image" if count == 1 else ""


def arch_image(
    request: BuildRequest,
    arch: Arch,
    fetched: list[FetchedPackage],
    keyring: Mapping[str, bytes],
) -> ArchImage:
    config = request.loaded.config
    sde = request.source_date_epoch
    build_date = (
        sde if sde is not None else max((f.apk.info.builddate or 0 for f in fetched), default=0)
    )
    root = assemble_root(
        config,
        [(f.apk, f.repository) for f in fetched],
        apk_arch=arch.apk,
        keyring=keyring,
        runtime_repositories=config.runtime_repositories(),
        world=(
            [f"{f.apk.name}={f.apk.version}" for f in fetched]
            if request.lock is not None
            else config.all_packages()
        ),
        source_date_epoch=sde or 0,
        build_date=build_date,
    )
    layering = config.layering
    layers = build_layers(
        root,
        strategy=layering.strategy if layering else "",
        budget=layering.budget if layering else 0,
    )
    created = rfc3339(build_date)
    annotations = image_annotations(request, created)
    comment = _history_comment(len(layers), annotations)
    doc = ImageConfigDoc(
        architecture=arch.architecture,
        variant=arch.variant,
        created=created,
        author=IMAGE_AUTHOR,
        diff_ids=[layer.diff_id for layer in layers],
        entrypoint=config.entrypoint.argv(),
        cmd=config.cmd_argv(),
        env=environment(request),
        user=resolve_run_as(config.accounts.run_as, root.fs, where=str(request.loaded.path or "")),
        working_dir=config.work_dir,
        stop_signal=config.stop_signal,
        volumes=config.volumes,
        labels=annotations,
        history=[
            HistoryEntry(
                created=created, created_by="nanodistro", author="nanodistro", comment=comment
            )
            for _ in layers
        ],
    )
    config_bytes = canonical_json(doc.to_dict())
    config_desc = Descriptor.for_bytes(MEDIA_CONFIG, config_bytes)
    manifest = canonical_json(
        image_manifest(config_desc, [layer.descriptor() for layer in layers], annotations)
    )
    descriptor = Descriptor.for_bytes(
        MEDIA_MANIFEST,
        manifest,
        platform=Platform(arch.architecture, "linux", arch.variant),
    )
    return ArchImage(arch, root, layers, config_bytes, manifest, descriptor, build_date)


def build_image(request: BuildRequest, *, progress: Progress | None = None) -> BuildResult:
    """Build every requested architecture and the image index (nothing is written)."""
    config = request.loaded.config
    if config.contents.baseimage is not None:
        raise ImageError(
            "contents.baseimage (apko's experimental build on top of a base image) is not "
            "supported; list the base's packages in contents.packages instead",
            where=str(request.loaded.path or ""),
            field="contents.baseimage",
        )
    if config.format == "erofs":
        raise ImageError(
            "format: erofs is not supported (only tar layers)",
            where=str(request.loaded.path or ""),
            field="format",
        )
    archs = config.target_archs(request.archs)
    lock_config = request.lock.config_checksum if request.lock is not None else None
    stale = lock_config is not None and lock_config != config_checksum(request.loaded.raw)
    if stale and progress is not None:
        progress("warning: the lock file was made for a different config (checksum differs)")
    if request.lock is not None and not request.archs:
        locked = set(request.lock.archs())
        archs = [a for a in archs if a.apk in locked] or archs
    images: list[ArchImage] = []
    fetched_by_arch: dict[str, list[FetchedPackage]] = {}
    blobs: dict[str, bytes] = {}
    # One client for the keyring and every arch: setting one up loads the CA bundle.
    with RepositoryClient({}, allow_downgrade=request.allow_downgrade) as client:
        keyring = load_config_keyring(request, client)
        client.keyring = keyring
        client.progress = progress if request.lock is None else None
        for arch in archs:
            fetched = resolve_arch(request, arch, keyring, progress, client)
            fetched_by_arch[arch.apk] = fetched
            if progress:
                progress(f"assemble {arch.apk}: {len(fetched)} packages")
            image = arch_image(request, arch, fetched, keyring)
            if progress:
                for warning in image.root.warnings:
                    progress(f"warning: {warning}")
            images.append(image)
            for layer in image.layers:
                blobs[layer.digest] = layer.gz
            blobs[Descriptor.for_bytes(MEDIA_CONFIG, image.config).digest] = image.config
            blobs[image.descriptor.digest] = image.manifest
    created = rfc3339(max((i.build_date for i in images), default=0))
    index = canonical_json(
        image_index([i.descriptor for i in images], image_annotations(request, created))
    )
    index_descriptor = Descriptor.for_bytes(MEDIA_INDEX, index)
    blobs[index_descriptor.digest] = index
    result = BuildResult(
        images=images,
        index=index,
        index_descriptor=index_descriptor,
        blobs=blobs,
        fetched=fetched_by_arch,
        ref_name=request.ref_name,
    )
    from nanodistro.image.sbom import image_sboms

    result.sboms = image_sboms(result, config_path=request.loaded.path, distro=request.distro)
    return result


def write_result(result: BuildResult, out: Path) -> None:
    """An OCI layout directory, or an ``oci-archive`` when ``out`` ends in ``.tar``; a
    multi-arch build also names each platform's manifest (``latest-arm64``) for umoci.

    SBOMs go to ``sboms/`` inside the layout (as apko's golden layouts have them)."""
    extra = {f"sboms/{name}": data for name, data in sorted(result.sboms.items())}
    platforms = [image.descriptor for image in result.images]
    try:
        write = write_layout_archive if str(out).endswith(".tar") else write_layout_dir
        write(
            out,
            result.blobs,
            result.index_descriptor,
            result.ref_name,
            extra=extra,
            platforms=platforms,
        )
    except OSError as error:
        raise ImageError(f"cannot write the image: {error.strerror}", where=str(out)) from None


def _as_written(request: BuildRequest) -> Callable[[str], str]:
    """Map resolved local repository paths back to how the config wrote them, so a lock file
    beside its config stays valid on another machine (apko locks keep ``./testdata/...``)."""
    base = request.loaded.base_dir
    mapping: dict[str, str] = {}
    for entry in request.loaded.config.build_repositories():
        resolved = parse_repository(resolve_local(entry, base)).url
        mapping[resolved] = parse_repository(entry).url

    def convert(text: str) -> str:
        for resolved, written in mapping.items():
            if text == resolved or text.endswith(" " + resolved):
                return text[: len(text) - len(resolved)] + written
            if resolved + "/" in text:
                return text.replace(resolved + "/", written + "/", 1)
        return text

    return convert


def lock_image(request: BuildRequest, *, progress: Progress | None = None) -> LockFile:
    """Resolve every arch and record exactly what a build would install."""
    config = request.loaded.config
    keyring = load_config_keyring(request)
    as_written = _as_written(request)
    lock = LockFile(
        config_name=request.loaded.path.name if request.loaded.path else "",
        config_checksum=config_checksum(request.loaded.raw),
        keyring=[
            {"name": entry, "url": entry, "content": pem.decode()}
            for entry, pem in zip(config.contents.keyring, keyring.values(), strict=False)
        ],
    )
    for arch in config.target_archs(request.archs):
        fetched = resolve_arch(request, arch, keyring, progress)
        for repo_entry in build_repository_entries(request):
            repo = parse_repository(repo_entry)
            lock.repositories.append(
                {
                    "name": as_written(repo_entry),
                    "url": as_written(f"{repo.url}/{arch.apk}/APKINDEX.tar.gz"),
                    "architecture": arch.apk,
                }
            )
        for item in fetched:
            lock.packages.append(
                LockedPackage.from_apk(
                    item.apk,
                    url=as_written(item.url),
                    arch=arch.apk,
                    repository=as_written(item.repository),
                )
            )
    return lock
