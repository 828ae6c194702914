"""CLI: ``nanodistro keygen`` — create a key pair: RSA for packages and indexes (default), or
ECDSA P-256 in cosign's format for image signatures, attestations and provenance."""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import err_console, print_json
from nanodistro.errors import KeyLoadError


def keygen(
    kind: str = typer.Option(
        "rsa", "--kind", help="rsa (APK packages/indexes) or ecdsa (cosign.key/cosign.pub)."
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="RSA: key name prefix (NAME-<8 hex>.rsa, default nanodistro); "
        "ECDSA: file stem (NAME.key/NAME.pub, default cosign).",
    ),
    out: Path = typer.Option(Path("keys"), "--out", help="Directory to write the key pair to."),
    bits: int = typer.Option(4096, "--bits", help="RSA modulus size (at least 2048)."),
    json_output: bool = typer.Option(False, "--json", help="Print the paths as JSON."),
) -> None:
    """Generate a signing key pair. RSA (default): private NAME-<id>.rsa (mode 0600) and public
    .rsa.pub; signatures name the public key file, so install it unchanged as
    /etc/apk/keys/<file>. ECDSA: cosign's encrypted NAME.key (password from $COSIGN_PASSWORD,
    empty when unset; mode 0600) and NAME.pub, usable by `cosign sign --key`.
    Never commit the private key.
    """
    if kind == "ecdsa":
        from nanodistro.trust.cosignkey import generate_key_pair

        private, public = generate_key_pair(out, name or "cosign")
        if json_output:
            print_json({"kind": "ecdsa", "private_key": str(private), "public_key": str(public)})
            return
        typer.echo(f"private key: {private}")
        typer.echo(f"public key:  {public}")
        return
    if kind != "rsa":
        raise KeyLoadError(f"unknown key kind {kind!r}: expected rsa or ecdsa", field="--kind")
    from nanodistro.trust.keys import generate_key  # cryptography: not for --help

    name = name or "nanodistro"
    if bits >= 4096 and not json_output:
        err_console.print(f"generating a {bits}-bit RSA key…")
    private, public = generate_key(name, out, bits=bits)
    if json_output:
        print_json({"private_key": str(private), "public_key": str(public), "keyname": public.name})
        return
    typer.echo(f"private key: {private}")
    typer.echo(f"public key:  {public}")


def register(app: typer.Typer) -> None:
    """Add ``keygen`` to the root app."""
    app.command("keygen")(keygen)
