"""CLI: ``nanodistro apk pack | info | verify`` — build, inspect and verify APK v2 packages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from nanodistro.cli._common import print_json
from nanodistro.errors import FormatError, NanodistroError
from nanodistro.formats.apk import ApkPackage, read_apk, verify_apk, verify_apk_bytes, write_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.tarball import entries_from_directory
from nanodistro.formats.version import parse_dependency, validate
from nanodistro.util.atomic import atomic_write_bytes
from nanodistro.util.host import host_arch

apk_app = typer.Typer(
    help="Build, inspect and verify APK v2 packages.",
    no_args_is_help=True,
)

# apk-tools package name rule (AT:doc/apk-package.5.scd).
_PKGNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise NanodistroError(f"cannot read ({error.strerror})", where=str(path)) from None


@apk_app.command("pack")
def pack(
    directory: Path = typer.Argument(..., help="Root of the package contents."),
    name: str = typer.Option(..., "--name", help="Package name."),
    version: str = typer.Option(..., "--version", help="Full version including -rN, e.g. 1.2-r0."),
    key: Path = typer.Option(..., "--key", help="Private RSA key (from `nanodistro keygen`)."),
    out: Path = typer.Option(..., "--out", help="Output .apk file (written atomically)."),
    arch: str = typer.Option(None, "--arch", help="Architecture (default: this machine's)."),
    depends: list[str] = typer.Option([], "--depends", help="Runtime dependency (repeatable)."),
    provides: list[str] = typer.Option([], "--provides", help="Provided name (repeatable)."),
    description: str = typer.Option("", "--description", help="One-line description."),
    license_: str = typer.Option("", "--license", help="SPDX license expression."),
    url: str = typer.Option("", "--url", help="Project URL."),
    origin: str = typer.Option("", "--origin", help="Source package name (default: --name)."),
    scripts: list[str] = typer.Option(
        [], "--script", help="Install script NAME=FILE, e.g. post-install=post.sh (repeatable)."
    ),
    source_date_epoch: int = typer.Option(
        0,
        "--source-date-epoch",
        envvar="SOURCE_DATE_EPOCH",
        help="Timestamp for every entry and builddate (env SOURCE_DATE_EPOCH).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pack DIRECTORY into a signed, reproducible APK v2 package."""
    if not _PKGNAME.match(name):
        raise FormatError(
            f"invalid package name {name!r} (letters, digits and ._+- , starting alnum)",
            field="--name",
        )
    validate(version, field="--version")
    for atom in [*depends, *provides]:
        parse_dependency(atom, where="command line")
    if not directory.is_dir():
        raise NanodistroError("not a directory", where=str(directory))
    script_files: dict[str, bytes] = {}
    for spec in scripts:
        script_name, sep, script_path = spec.partition("=")
        if not sep:
            raise FormatError(f"expected NAME=FILE, got {spec!r}", field="--script")
        script_files[script_name] = _read(Path(script_path))
    from nanodistro.trust.keys import load_signing_key  # cryptography: not for --help

    signing_key = load_signing_key(key)
    info = PackageInfo(
        name=name,
        version=version,
        arch=arch or host_arch(),
        description=description,
        license=license_,
        url=url,
        origin=origin or name,
        depends=list(depends),
        provides=list(provides),
    )
    entries = entries_from_directory(directory, mtime=source_date_epoch)
    data = write_apk(
        info,
        entries,
        key=signing_key,
        scripts=script_files,
        source_date_epoch=source_date_epoch,
    )
    atomic_write_bytes(out, data)
    pkg = read_apk(data, where=str(out))
    summary = {
        "file": str(out),
        "name": name,
        "version": version,
        "arch": info.arch,
        "size": len(data),
        "checksum": pkg.info.checksum,
        "keyname": signing_key.keyname,
        "files": len(entries),
    }
    if json_output:
        print_json(summary)
    else:
        typer.echo(
            f"wrote {out} ({name}-{version} {info.arch}, {len(entries)} entries, {len(data)} bytes, "
            f"{pkg.info.checksum}, signed with {signing_key.keyname})"
        )


def _describe(pkg: ApkPackage) -> dict[str, Any]:
    info = pkg.info
    return {
        "name": info.name,
        "version": info.version,
        "arch": info.arch,
        "description": info.description,
        "url": info.url,
        "license": info.license,
        "origin": info.origin,
        "commit": info.commit,
        "maintainer": info.maintainer,
        "builddate": info.builddate,
        "installed_size": info.installed_size,
        "depends": info.depends,
        "provides": info.provides,
        "replaces": info.replaces,
        "install_if": info.install_if,
        "triggers": info.triggers,
        "datahash": info.datahash,
        "checksum": info.checksum,
        "file_size": info.file_size,
        "signatures": [{"algorithm": s.algorithm, "keyname": s.keyname} for s in pkg.signatures],
        "segments": {
            seg.name: {
                "range": seg.range,
                "sha1": seg.checksum("sha1"),
                "sha256": seg.checksum("sha256"),
            }
            for seg in (pkg.signature, pkg.control, pkg.data)
            if seg is not None
        },
        "control_files": list(pkg.control_files),
        "files": [
            {
                "path": e.path,
                "type": e.type,
                "mode": f"{e.mode:04o}",
                "size": e.size,
                "owner": f"{e.uname or e.uid}:{e.gname or e.gid}",
                **({"target": e.linkname} if e.linkname else {}),
            }
            for e in pkg.entries
        ],
    }


@apk_app.command("info")
def info(
    file: Path = typer.Argument(..., help="The .apk file."),
    keyring: list[Path] = typer.Option(
        [], "--keyring", help="Public key directory or file to check the signature with."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Show a package's metadata, files and signature status."""
    from nanodistro.trust.keys import load_keyring  # cryptography: not for --help

    pkg = read_apk(_read(file), where=str(file))
    details = _describe(pkg)
    if keyring:
        try:
            result = verify_apk(pkg, load_keyring(keyring))
            details["verified"] = {
                "ok": True,
                "keyname": result.keyname,
                "algorithm": result.algorithm,
            }
        except NanodistroError as error:
            details["verified"] = {"ok": False, "error": error.message}
    if json_output:
        print_json(details)
        return
    for key in ("name", "version", "arch", "description", "url", "license", "origin", "commit",
                "maintainer", "builddate", "installed_size", "checksum", "file_size", "datahash"):  # fmt: skip
        value = details[key]
        if value not in (None, ""):
            typer.echo(f"{key + ':':16}{value}")
    for key in ("depends", "provides", "replaces", "install_if", "triggers"):
        if details[key]:
            typer.echo(f"{key + ':':16}{' '.join(details[key])}")
    signatures = ", ".join(f"{s['algorithm']} {s['keyname']}" for s in details["signatures"])
    typer.echo(f"{'signatures:':16}{signatures or 'none (unsigned)'}")
    if "verified" in details:
        verified = details["verified"]
        status = (
            f"OK ({verified['keyname']}, {verified['algorithm']})"
            if verified["ok"]
            else f"FAILED: {verified['error']}"
        )
        typer.echo(f"{'verified:':16}{status}")
    else:
        typer.echo(f"{'verified:':16}not checked (pass --keyring DIR to verify)")
    typer.echo(f"{'control files:':16}{' '.join(details['control_files'])}")
    typer.echo(f"files ({len(pkg.entries)}):")
    for entry in details["files"]:
        target = f" -> {entry['target']}" if "target" in entry else ""
        typer.echo(
            f"  {entry['mode']} {entry['owner']:>11} {entry['size']:>10} {entry['path']}{target}"
        )


@apk_app.command("verify")
def verify(
    files: list[Path] = typer.Argument(..., help="One or more .apk files."),
    keyring: list[Path] = typer.Option(
        ..., "--keyring", help="Trusted public key directory or file (repeatable)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Verify signature, datahash and file checksums; exit 1 if any package fails."""
    from nanodistro.trust.keys import load_keyring  # cryptography: not for --help

    keys = load_keyring(keyring)
    results: list[dict[str, Any]] = []
    for file in files:
        try:
            _, result = verify_apk_bytes(_read(file), keys, where=str(file))
            results.append(
                {
                    "file": str(file),
                    "ok": True,
                    "keyname": result.keyname,
                    "algorithm": result.algorithm,
                }
            )
        except NanodistroError as error:
            results.append({"file": str(file), "ok": False, "error": error.message})
    if json_output:
        print_json(results)
    else:
        for item in results:
            if item["ok"]:
                typer.echo(f"{item['file']}: OK ({item['keyname']}, {item['algorithm']})")
            else:
                typer.echo(f"{item['file']}: FAILED: {item['error']}")
    failed = [item for item in results if not item["ok"]]
    if len(failed) == 1:
        raise NanodistroError(failed[0]["error"], where=failed[0]["file"])
    if failed:
        # one line on stderr (the contract of every command); the details are on stdout
        raise NanodistroError(f"{len(failed)} of {len(results)} packages failed verification")


def register(app: typer.Typer) -> None:
    """Add the ``apk`` command group to the root app."""
    app.add_typer(apk_app, name="apk")
