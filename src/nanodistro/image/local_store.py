"""Load a built image into a local container store (``apko publish --local``).

The store is the docker daemon when ``docker info`` answers, else podman when ``podman info``
does; with neither, an ImageError says what was tried and why each failed. The image goes in as
a ``docker-archive`` tar on ``<store> load``'s stdin (``manifest.json`` with ``RepoTags``, the
config and the gzip layers as they are in the layout, which both stores and skopeo read). A
store holds one platform per tag, so a multi-arch build loads the host's platform, as apko does.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanodistro.errors import ConfigError, ImageError
from nanodistro.image.oci_layout import archive_bytes
from nanodistro.imageconfig.arch import Arch
from nanodistro.registry.blobs import compute_digest
from nanodistro.registry.reference import parse_reference

if TYPE_CHECKING:
    from nanodistro.image.build import ArchImage, BuildResult

__all__ = [
    "LoadResult",
    "LocalStore",
    "docker_archive",
    "find_local_store",
    "load_local",
    "local_tags",
]

STORES = ("docker", "podman")
_INFO_TIMEOUT = 30.0
_LOAD_TIMEOUT = 600.0


@dataclass(frozen=True)
class LocalStore:
    name: str  # docker | podman
    program: str


@dataclass(frozen=True)
class LoadResult:
    store: str
    arch: str  # APK name of the platform loaded
    image_id: str  # the config digest, what `docker images --no-trunc` shows as IMAGE ID
    tags: list[str]


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def find_local_store() -> LocalStore:
    """The first of docker, podman whose ``info`` succeeds; ImageError naming both otherwise."""
    reasons = []
    for name in STORES:
        program = shutil.which(name)
        if program is None:
            reasons.append(f"{name}: not on PATH")
            continue
        try:
            done = subprocess.run(
                [program, "info"], capture_output=True, timeout=_INFO_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            reasons.append(f"{name}: `{name} info` did not answer in {_INFO_TIMEOUT:.0f} s")
            continue
        except OSError as exc:
            reasons.append(f"{name}: cannot run {program}: {exc.strerror or exc}")
            continue
        if done.returncode == 0:
            return LocalStore(name, program)
        reasons.append(f"{name}: `{name} info` failed: {_last_line(done.stderr or done.stdout)}")
    raise ImageError(
        "no local container store found for --local (" + "; ".join(reasons) + "); start the "
        "docker daemon or install podman, or push to a registry instead"
    )


def local_tags(references: Sequence[str]) -> list[str]:
    """The store names (``RepoTags``) for ``references``; ConfigError for a digest reference."""
    tags = []
    for reference in references:
        ref = parse_reference(reference)
        if ref.digest:
            raise ConfigError(
                f"{reference}: a local container store is given tags, not digests", field="REF"
            )
        tags.append(f"{ref.registry}/{ref.repository}:{ref.tag or 'latest'}")
    return list(dict.fromkeys(tags))


def _host_image(result: BuildResult) -> ArchImage:
    """The build's image for this machine's architecture (the only one, if just one was built)."""
    if len(result.images) == 1:
        return result.images[0]
    try:
        host = Arch.parse(platform.machine()).apk
    except ConfigError:
        host = platform.machine()
    for image in result.images:
        if image.arch.apk == host:
            return image
    built = ", ".join(image.arch.apk for image in result.images)
    raise ImageError(
        f"--local loads the host's platform ({host}), and the build has only {built}; "
        "build with --arch for this machine"
    )


def docker_archive(image: ArchImage, blobs: dict[str, bytes], tags: Sequence[str]) -> bytes:
    """A ``docker-archive`` tar of one platform image named ``tags`` (docker save's format)."""
    config_digest = compute_digest(image.config)
    files = {_blob_name(config_digest): image.config}
    layer_names = []
    for layer in image.layers:
        name = _blob_name(layer.digest)
        files[name] = blobs[layer.digest]
        layer_names.append(name)
    manifest = [
        {"Config": _blob_name(config_digest), "RepoTags": list(tags), "Layers": layer_names}
    ]
    files["manifest.json"] = json.dumps(manifest, separators=(",", ":")).encode()
    return archive_bytes(files)


def _blob_name(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


def load_local(
    result: BuildResult, references: Sequence[str], *, store: LocalStore | None = None
) -> LoadResult:
    """Load the host platform's image of ``result`` into the local store, tagged ``references``."""
    tags = local_tags(references)
    image = _host_image(result)
    store = store or find_local_store()
    archive = docker_archive(image, result.blobs, tags)
    try:
        done = subprocess.run(
            [store.program, "load"],
            input=archive,
            capture_output=True,
            timeout=_LOAD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ImageError(f"`{store.name} load` did not finish in {_LOAD_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise ImageError(f"cannot run {store.program}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise ImageError(
            f"`{store.name} load` failed (exit {done.returncode}): "
            f"{_last_line(done.stderr or done.stdout)}"
        )
    return LoadResult(store.name, image.arch.apk, compute_digest(image.config), tags)
