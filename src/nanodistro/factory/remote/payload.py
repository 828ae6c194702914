"""What crosses the trust boundary, both ways, as plain JSON: files (base64), the build settings
a worker needs (never a key path, a private key or a state URL), and the checks on what comes
back (only known fields, the right types)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from nanodistro.errors import BuildError, TrustError


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, *, where: str) -> bytes:
    if not isinstance(text, str):
        raise TrustError("expected base64 text", where=where)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TrustError("expected base64 text", where=where) from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------ recipe files


def recipe_files(path: Path, name: str) -> dict[str, str]:
    """The recipe file and its source directory ``<dir>/<name>/`` (patches, series; the files
    ``recipe_hash`` covers), by path relative to the recipe's directory, in base64."""
    files = {path.name: b64(path.read_bytes())}
    source_dir = path.parent / name
    if source_dir.is_dir():
        for file in sorted(p for p in source_dir.rglob("*") if p.is_file()):
            files[(Path(name) / file.relative_to(source_dir)).as_posix()] = b64(file.read_bytes())
    return files


def directory_files(directory: Path) -> dict[str, str]:
    """Every regular file under ``directory`` (pipeline YAML), relative, in base64."""
    return {
        file.relative_to(directory).as_posix(): b64(file.read_bytes())
        for file in sorted(directory.rglob("*"))
        if file.is_file() and not file.is_symlink()
    }


def write_files(files: Any, target: Path, *, where: str) -> None:
    """Write shipped files beneath ``target``; a path that would leave it is refused."""
    if not isinstance(files, Mapping):
        raise BuildError("expected an object of files", where=where)
    for relative, text in files.items():
        parts = PurePosixPath(str(relative)).parts
        if not parts or PurePosixPath(str(relative)).is_absolute() or ".." in parts:
            raise BuildError(f"file path {relative!r} leaves the job directory", where=where)
        out = target.joinpath(*parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(str(text), validate=True))


def fresh_dir(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


# ---------------------------------------------------------------------------- build settings


def build_settings(config: Any) -> dict[str, Any]:
    """The parts of a ``BuildConfig`` a worker builds with. Deliberately not: ``key``,
    ``provenance_key``, ``repo`` (a control-plane path), ``workspace_dir``, ``source_cache``
    (the worker has its own), hooks."""
    toolchain = config.toolchain
    return {
        "arch": config.arch,
        "source_date_epoch": config.source_date_epoch,
        "build_options": list(config.build_options),
        "namespace": config.namespace,
        "mirrors": dict(config.mirrors),
        "step_timeout": config.step_timeout,
        "build_timeout": config.build_timeout,
        "allow_downgrade": config.allow_downgrade,
        "run_tests": config.run_tests,
        "toolchain": {
            "host_root": str(toolchain.host_root),
            "paths": list(toolchain.paths),
            "provides": sorted(toolchain.provides),
            "libc_sonames": sorted(toolchain.libc_sonames),
        },
        "sandbox": dataclasses.asdict(config.sandbox),
    }


def public_keyring(config: Any) -> dict[str, str]:
    """Public keys only: the keyring plus the signing key's public half."""
    keyring = {name: bytes(pem).decode("ascii") for name, pem in (config.keyring or {}).items()}
    if config.key is not None:
        keyring.setdefault(config.key.keyname, config.key.public_pem().decode("ascii"))
    for name, pem in keyring.items():
        if "PRIVATE KEY" in pem:  # a misconfigured keyring must not ship a private key
            raise BuildError(f"keyring entry {name} holds a private key; expected public keys")
    return keyring


def worker_config(
    settings: Mapping[str, Any],
    *,
    repositories: list[str],
    keyring: Mapping[str, str],
    source_cache: Path,
    workspace_dir: Path,
    pipeline_dirs: list[Path],
) -> Any:
    """The worker's ``BuildConfig``: no key (packages come out unsigned), no repository to
    publish to, the control plane's repository only to read from (indexes verified with the
    public keys)."""
    from nanodistro.builder.config import BuildConfig
    from nanodistro.builder.runners import SandboxPolicy, Toolchain

    tool = settings["toolchain"]
    return BuildConfig(
        arch=settings["arch"],
        repo=None,
        key=None,
        keyring={name: pem.encode("ascii") for name, pem in keyring.items()},
        extra_repos=list(repositories),
        source_cache=source_cache,
        pipeline_dirs=pipeline_dirs,
        toolchain=Toolchain(
            host_root=Path(tool["host_root"]),
            paths=tuple(tool["paths"]),
            provides=frozenset(tool["provides"]),
            libc_sonames=frozenset(tool["libc_sonames"]),
        ),
        workspace_dir=workspace_dir,
        keep_failed_logs=False,
        run_tests=bool(settings["run_tests"]),
        source_date_epoch=settings["source_date_epoch"],
        step_timeout=settings["step_timeout"],
        build_timeout=settings["build_timeout"],
        build_options=list(settings["build_options"]),
        namespace=settings["namespace"],
        mirrors=dict(settings["mirrors"]),
        sandbox=SandboxPolicy(**settings["sandbox"]),
        allow_downgrade=bool(settings["allow_downgrade"]),
    )


# ----------------------------------------------------------------------- checks on outputs


def only_fields(value: Any, allowed: Collection[str], *, where: str) -> dict[str, Any]:
    """``value`` as a dict holding no field but ``allowed`` (an output with anything else is
    refused: nothing unexpected is carried along)."""
    if not isinstance(value, dict):
        raise TrustError(f"expected a JSON object, got {type(value).__name__}", where=where)
    extra = sorted(set(value) - set(allowed))
    if extra:
        raise TrustError(f"unexpected fields {', '.join(extra)}; refused", where=where)
    return value


#: How much of a text a worker returns (an error, a smoke test's output) is kept: it goes into
#: the job's row, the event log and messages, where a worker's megabytes have no place.
TEXT_LIMIT = 4000


def clipped(value: Any, limit: int = TEXT_LIMIT) -> str:
    """``value`` as text, at most ``limit`` characters (the cut said)."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more)"


def duration(value: Any, *, where: str) -> float:
    """A returned ``seconds``: a finite number from 0 to a year (absent: 0). Anything else
    (text, NaN, 1e999) is refused rather than met later as a ``ValueError``/``OverflowError``
    while dating the provenance."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TrustError(f"seconds: expected a number, got {type(value).__name__}", where=where)
    if not 0 <= value <= 366 * 86400:  # False for NaN too
        raise TrustError(f"seconds: expected 0 to a year, got {value!r}", where=where)
    return float(value)


def records(cls: type, values: Any, *, where: str) -> list[Any]:
    """Dataclass records from a list of JSON objects, refusing unknown or mistyped fields."""
    if not isinstance(values, list):
        raise TrustError("expected a list", where=where)
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for value in values:
        only_fields(value, names, where=where)
        try:
            out.append(cls(**value))
        except TypeError as error:
            raise TrustError(f"malformed record: {error}", where=where) from None
    return out
