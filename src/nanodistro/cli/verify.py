"""CLI: ``nanodistro verify TARGET`` — signatures, provenance and SBOM of a package or image."""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import print_json


def verify(
    target: str = typer.Argument(
        ...,
        help="An .apk file (also REPO/<arch>/<file>.apk), an OCI layout (DIR or DIR:TAG) or a "
        "registry reference.",
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        help="ECDSA public key (cosign.pub) for provenance and image signatures "
        "(default: the workspace's keys/cosign.pub).",
    ),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="RSA public key file/dir for APK signatures (default: the workspace's keys/).",
    ),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="Policy TOML ([provenance] builder-ids, source-repositories, ...)."
    ),
    provenance: Path | None = typer.Option(
        None, "--provenance", help="Provenance file of an .apk (default: <apk>.intoto.jsonl)."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP to the registry."),
    json_output: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Verify a package or image: APK or cosign signature, SLSA provenance (signature, subject
    digest, builder id, source repositories allowed by the policy) and the SBOM. One line per
    check; exits 1 when any check fails."""
    from nanodistro.factory.workspace import find_workspace, load_workspace
    from nanodistro.trust.ecdsa import load_public_key
    from nanodistro.trust.keys import load_keyring
    from nanodistro.trust.provenance import Policy, load_policy
    from nanodistro.trust.verify import all_ok, verify_image, verify_package

    found = find_workspace(Path.cwd())
    if found is not None:
        workspace = load_workspace(found)
        if key is None and (workspace.keys_dir / "cosign.pub").is_file():
            key = workspace.keys_dir / "cosign.pub"
        if not keyring and workspace.keys_dir.is_dir():
            keyring = [workspace.keys_dir]
    public_key = load_public_key(key) if key is not None else None
    policy = load_policy(policy_file) if policy_file is not None else Policy()
    path = Path(target)
    if path.is_file() and path.suffix == ".apk":
        checks = verify_package(
            path,
            keyring=load_keyring(keyring) if keyring else None,
            public_key=public_key,
            policy=policy,
            provenance_file=provenance,
        )
    else:
        checks = verify_image(target, public_key=public_key, policy=policy, insecure=insecure)
    ok = all_ok(checks)
    if json_output:
        print_json({"target": target, "ok": ok, "checks": [c.to_json() for c in checks]})
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            typer.echo(f"{check.name:<{width}}  {'ok' if check.ok else 'FAIL'}  {check.reason}")
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
