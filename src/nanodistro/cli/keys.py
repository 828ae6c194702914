"""CLI: ``nanodistro keygen`` — create an RSA key pair for signing packages and indexes."""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import err_console, print_json
from nanodistro.trust.keys import generate_key


def keygen(
    name: str = typer.Option("nanodistro", "--name", help="Key name prefix (NAME-<8 hex>.rsa)."),
    out: Path = typer.Option(Path("keys"), "--out", help="Directory to write the key pair to."),
    bits: int = typer.Option(4096, "--bits", help="RSA modulus size (at least 2048)."),
    json_output: bool = typer.Option(False, "--json", help="Print the paths as JSON."),
) -> None:
    """Generate an RSA signing key pair (private NAME-<id>.rsa, mode 0600, and public .rsa.pub).

    Signatures name the public key file, so install it unchanged as /etc/apk/keys/<file>.
    Never commit the private key.
    """
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
