"""CLI: ``nanodistro publish``, ``nanodistro index`` and the ``nanodistro repo`` group (``check``;
``snapshot``, ``versions``, ``channel``, ``prune`` for numbered versions and channels) — the signed
local repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import err_console, print_json
from nanodistro.errors import KeyLoadError
from nanodistro.formats.signature import Keyring, SigningKey

if TYPE_CHECKING:
    from nanodistro.repo.consistency import Upstream

# nanodistro.repo and trust.keys (cryptography) are imported by the commands that use them, so
# `--help` and the other commands of this group do not load them.


def _progress(quiet: bool) -> Callable[[str], None] | None:
    """Progress lines go to stderr, so --json output on stdout stays parseable."""
    if quiet:
        return None
    return lambda message: err_console.print(message, highlight=False, markup=False)


def publish(
    files: list[Path] = typer.Argument(..., help=".apk files to publish."),
    repo: Path = typer.Option(..., "--repo", help="Repository root; packages go to REPO/ARCH/."),
    key: Path = typer.Option(..., "--key", help="Private RSA key that signs the index."),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="Public key file or directory trusted to sign packages, besides --key's own "
        "public key (repeatable). Unsigned or otherwise-signed packages are refused.",
    ),
    description: str = typer.Option(
        None, "--description", help="Index DESCRIPTION (default: keep the current one)."
    ),
    noarch_arch: list[str] = typer.Option(
        [],
        "--noarch-arch",
        help="Arch directory that receives noarch packages (repeatable; default: every arch "
        "directory present, else x86_64 and aarch64).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print what was published as JSON."),
    upstream_repos: list[str] = typer.Option(
        [],
        "--repository",
        help="Upstream repository (directory or URL, signed by --keyring or the key) whose "
        "packages may provide dependencies (repeatable).",
    ),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="Publish even if a dependency has no provider (a partial repository).",
    ),
) -> None:
    """Publish packages into a repository and re-sign each touched ARCH/APKINDEX.tar.gz.

    Published files are immutable: a different file under an existing NAME-VERSION.apk is
    refused; the identical file is a no-op. Safe to run concurrently (the repository is locked).
    Every package must be signed by --key or a --keyring key, match its datahash and file
    checksums, and hold no entry extraction refuses (.., absolute paths, links out of the root,
    device nodes); otherwise nothing is published. Leftovers of a crashed publish are removed.
    Every dependency of every package in the resulting index must have a provider (in it or an
    upstream --repository), else nothing is published (see `nanodistro repo check`).
    """
    from nanodistro.repo import publish as publish_packages
    from nanodistro.trust.keys import load_keyring, load_signing_key

    signing_key = load_signing_key(key)
    trusted = load_keyring(keyring) if keyring else None
    result = publish_packages(
        files,
        repo,
        signing_key,
        trusted,
        description=description,
        noarch_archs=noarch_arch or None,
        progress=_progress(json_output),
        allow_missing=allow_missing,
        upstream=_upstream(upstream_repos, {**(trusted or {}), **_own_key(signing_key)}),
        host_provides=_host_provides(),
    )
    if json_output:
        print_json(
            {
                "packages": [
                    {
                        "name": p.name,
                        "version": p.version,
                        "arch": p.arch,
                        "path": str(p.path),
                        "sha256": p.sha256,
                        "checksum": p.checksum,
                        "status": p.status,
                    }
                    for p in result.packages
                ],
                "indexes": {arch: str(path) for arch, path in sorted(result.indexes.items())},
                "keyname": signing_key.keyname,
            }
        )
        return
    for p in result.packages:
        typer.echo(f"{p.status:9s} {p.arch}/{p.path.name}")
    for path in sorted(result.indexes.values()):
        typer.echo(f"signed    {path} ({signing_key.keyname})")


def index(
    arch_dir: Path = typer.Argument(..., help="Arch directory, e.g. repo/x86_64."),
    key: Path = typer.Option(..., "--key", help="Private RSA key that signs the index."),
    description: str = typer.Option(
        None, "--description", help="Index DESCRIPTION (default: keep the current one)."
    ),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="Public key file or directory trusted to sign packages, besides --key's own "
        "public key (repeatable).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the index summary as JSON."),
) -> None:
    """Regenerate and sign ARCH_DIR/APKINDEX.tar.gz from the .apk files in it."""
    from nanodistro.repo import reindex
    from nanodistro.trust.keys import load_keyring, load_signing_key

    signing_key = load_signing_key(key)
    trusted = load_keyring(keyring) if keyring else None
    result = reindex(
        arch_dir,
        signing_key,
        description,
        keyring=trusted,
        progress=_progress(json_output),
    )
    path = arch_dir / "APKINDEX.tar.gz"
    if json_output:
        print_json(
            {
                "index": str(path),
                "description": result.description,
                "keyname": result.verified_by,
                "packages": [
                    {"name": p.name, "version": p.version, "arch": p.arch, "checksum": p.checksum}
                    for p in result.packages
                ],
            }
        )
        return
    typer.echo(f"signed {path}: {len(result.packages)} packages ({result.verified_by})")


repo_app = typer.Typer(help="Inspect signed APK repositories.", no_args_is_help=True)


def _own_key(key: SigningKey) -> dict[str, bytes]:
    return {key.keyname: key.public_pem()}


def _upstream(specs: list[str], keyring: Keyring) -> Callable[[str], Upstream] | None:
    if not specs:
        return None
    from nanodistro.repo.consistency import load_upstream
    from nanodistro.resolve.repositories import parse_repository

    refs = [parse_repository(spec, where="--repository") for spec in specs]
    return load_upstream(refs, keyring)


def _host_provides() -> Callable[[str], bool]:
    """Whether the build host's toolchain root has a name (explains a missing provider)."""
    from nanodistro.builder.environment import ToolchainIndex
    from nanodistro.builder.runners import Toolchain

    return ToolchainIndex(Toolchain()).satisfies


def _repository_keyring(repo: Path) -> Keyring:
    """The repository's own public keys: ``*.pub`` in REPO or REPO/keys."""
    from nanodistro.trust.keys import load_keyring

    found = [d for d in (repo, repo / "keys") if d.is_dir() and any(d.glob("*.pub"))]
    if not found:
        raise KeyLoadError(
            "no public key to verify the index: pass --keyring (no *.pub in the repository "
            "or its keys/ folder)",
            where=str(repo),
        )
    return load_keyring(found)


@repo_app.command("check")
def check(
    repo: Path = typer.Argument(..., help="Repository root (holds ARCH/APKINDEX.tar.gz)."),
    arch: list[str] = typer.Option(
        [], "--arch", help="Arch to check (repeatable; default: every arch with an index)."
    ),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="Public key file or directory the index must be signed by (repeatable; default: "
        "the *.pub files in REPO or REPO/keys).",
    ),
    upstream_repos: list[str] = typer.Option(
        [],
        "--repository",
        help="Upstream repository (directory or URL) whose packages may provide dependencies "
        "(repeatable).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the reports as JSON."),
) -> None:
    """Check that every dependency of every package has a provider; exit 1 if one has none.

    Also prints what `apk index` would warn about ("No provider for the dependencies: ...").
    Versions count: so:libz.so.1>=1.2 needs a provider of a matching version.
    """
    from nanodistro.repo.consistency import check_repository
    from nanodistro.trust.keys import load_keyring

    trusted = load_keyring(keyring) if keyring else _repository_keyring(repo)
    reports = check_repository(
        repo,
        trusted,
        archs=arch,
        upstream=_upstream(upstream_repos, trusted),
        host_provides=_host_provides(),
    )
    missing = sum(len(r.missing) for r in reports)
    if json_output:
        print_json(
            {
                "repository": str(repo),
                "consistent": missing == 0,
                "archs": [r.to_json() for r in reports],
            }
        )
    else:
        for report in reports:
            state = "consistent" if report.ok else f"{len(report.missing)} missing"
            typer.echo(f"{report.arch}: {report.packages} packages, {state}")
            for item in report.missing:
                typer.echo(f"  {item}")
            for line in report.apk_index_warnings():
                typer.echo(f"  apk index: {line}")
        if missing:
            typer.echo(
                f"{repo}: {missing} dependenc{'y' if missing == 1 else 'ies'} without a provider"
            )
        else:
            typer.echo(f"{repo}: every dependency has a provider")
    if missing:
        raise typer.Exit(1)


# -- versions and channels (repo/versions.py) ------------------------------------------------


@repo_app.command("snapshot")
def snapshot_command(
    repo: Path = typer.Argument(..., help="Repository root (holds ARCH/APKINDEX.tar.gz)."),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="Public key file or directory each index must be signed by (repeatable; default: "
        "the *.pub files in REPO or REPO/keys, if any).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the version as JSON."),
) -> None:
    """Freeze the repository's current indexes as a new numbered version REPO/versions/N.

    Packages are hard-linked (stored once); nothing new is made when the newest version already
    equals the repository.
    """
    from nanodistro.repo import versions as repo_versions
    from nanodistro.trust.keys import load_keyring

    if keyring:
        trusted: Keyring | None = load_keyring(keyring)
    else:
        found = [d for d in (repo, repo / "keys") if d.is_dir() and any(d.glob("*.pub"))]
        trusted = load_keyring(found) if found else None
    number = repo_versions.snapshot(repo, keyring=trusted, progress=_progress(json_output))
    if json_output:
        print_json(repo_versions.read_version(repo, number).to_json())
        return
    typer.echo(f"{repo}: version {number}")


@repo_app.command("versions")
def versions_command(
    repo: Path = typer.Argument(..., help="Repository root."),
    json_output: bool = typer.Option(False, "--json", help="Print the versions as JSON."),
) -> None:
    """List the repository's numbered versions and the channels pointing at them."""
    from nanodistro.repo import versions as repo_versions

    numbers = repo_versions.list_versions(repo)
    pointers = repo_versions.channels(repo)
    if json_output:
        print_json(
            {
                "repository": str(repo),
                "channels": pointers,
                "versions": [
                    {
                        **repo_versions.read_version(repo, n).to_json(),
                        "channels": sorted(c for c, v in pointers.items() if v == n),
                    }
                    for n in numbers
                ],
            }
        )
        return
    if not numbers:
        typer.echo(f"{repo}: no versions (make one with `nanodistro repo snapshot {repo}`)")
        return
    for n in numbers:
        version = repo_versions.read_version(repo, n)
        counts = ", ".join(f"{a} {len(p)}" for a, p in sorted(version.packages.items()))
        marks = "".join(f" <- {c}" for c, v in sorted(pointers.items()) if v == n)
        typer.echo(f"{n:>5}  {version.created}  {counts}{marks}")


@repo_app.command("channel")
def channel_command(
    repo: Path = typer.Argument(..., help="Repository root."),
    channel: str = typer.Argument(..., help="Channel: staging or stable."),
    version: int = typer.Argument(
        None, help="Version to point the channel at (omit to print the current one)."
    ),
) -> None:
    """Print a channel's version, or move it (atomically) to VERSION.

    apk clients read a channel as a repository: --repository REPO/stable.
    """
    from nanodistro.repo import versions as repo_versions

    if version is None:
        current = repo_versions.channel_version(repo, channel)
        if current is None:
            typer.echo(f"{channel}: not set")
            raise typer.Exit(1)
        typer.echo(f"{channel}: {current}")
        return
    before = repo_versions.set_channel(repo, channel, version)
    moved = f"{before} -> {version}" if before is not None else f"set to {version}"
    typer.echo(f"{channel}: {moved}")


def _workspace_protected(workspace: Path, repo: Path) -> dict[int, list[str]]:
    """Versions of REPO the workspace refers to: version -> why (lock files; images in the
    factory's state database, once it exists)."""
    from nanodistro.repo import versions as repo_versions

    reasons: dict[int, list[str]] = {}
    for lock in repo_versions.find_lock_files(workspace):
        for n in repo_versions.locked_versions(repo, [lock]):
            reasons.setdefault(n, []).append(str(lock))
    for n, why in _state_protected(workspace).items():
        reasons.setdefault(n, []).append(why)
    return reasons


def _state_protected(workspace: Path) -> dict[int, str]:
    """``images.repo_version`` of the factory state, when the workspace has a state database.

    Guarded: the state package (factory/state) may be absent in older trees; then only lock
    files protect versions."""
    try:
        from sqlalchemy import select

        from nanodistro.factory.state import open_state, workspace_state_url
        from nanodistro.factory.state.models import ImageRow
        from nanodistro.factory.workspace import WORKSPACE_FILE, load_workspace
    except ImportError:
        return {}
    if not (workspace / WORKSPACE_FILE).is_file():
        return {}
    loaded = load_workspace(workspace)
    if loaded.state_url is None and not (loaded.root / ".nanodistro" / "state.db").is_file():
        return {}  # no factory run yet: opening would create an empty database
    found: dict[int, str] = {}
    with open_state(workspace_state_url(loaded)) as state, state.session() as session:
        rows = session.execute(
            select(ImageRow.name, ImageRow.tag, ImageRow.repo_version).where(
                ImageRow.repo_version.is_not(None)
            )
        )
        for name, tag, number in rows:
            if number is not None:
                found.setdefault(number, f"image {name}:{tag}")
    return found


@repo_app.command("prune")
def prune_command(
    repo: Path = typer.Argument(..., help="Repository root."),
    keep: int = typer.Option(..., "--keep", help="How many of the newest versions to keep (>= 1)."),
    protect: list[int] = typer.Option(
        [], "--protect", help="A version to keep whatever its age (repeatable)."
    ),
    workspace: Path = typer.Option(
        None,
        "--workspace",
        help="Also keep the versions its lock files (*.lock.json) and its factory state's "
        "images refer to.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; remove nothing."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove old versions no channel, image or lock file refers to.

    Kept: the newest --keep versions, every channel's target, --protect versions and, with
    --workspace, what its lock files and images refer to. Packages stay in the repository.
    """
    from nanodistro.repo import versions as repo_versions

    reasons: dict[int, list[str]] = {n: ["--protect"] for n in protect}
    if workspace is not None:
        for n, why in _workspace_protected(workspace, repo).items():
            reasons.setdefault(n, []).extend(why)
    removed = repo_versions.prune(repo, keep, set(reasons), dry_run=dry_run)
    if json_output:
        print_json(
            {
                "repository": str(repo),
                "removed": removed,
                "dry_run": dry_run,
                "kept": repo_versions.list_versions(repo) if not dry_run else None,
                "protected": {str(n): why for n, why in sorted(reasons.items())},
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    for n, why in sorted(reasons.items()):
        typer.echo(f"protected {n}: {', '.join(why)}")
    typer.echo(
        f"{verb} {len(removed)} version(s){': ' if removed else ''}" + " ".join(map(str, removed))
    )


def register(app: typer.Typer) -> None:
    """Add ``publish``, ``index`` and the ``repo`` group to the root app."""
    app.command("publish")(publish)
    app.command("index")(index)
    app.add_typer(repo_app, name="repo")
