"""CLI: ``nanodistro image sign | attest`` — cosign-compatible signatures and attestations.

Registered onto the ``image`` group by cli/image.py. Keys are cosign key files (``nanodistro
keygen --kind ecdsa`` or ``cosign generate-key-pair``); the password comes from
``$COSIGN_PASSWORD`` (empty when unset), as for cosign.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from nanodistro.cli._common import print_json
from nanodistro.errors import ConfigError

TARGET_HELP = "Registry reference (host[:port]/repo[:tag|@digest]) or OCI layout DIR[:TAG]."
KEY_OPTION = typer.Option(
    ..., "--key", help="cosign private key file (password from $COSIGN_PASSWORD)."
)
INSECURE_OPTION = typer.Option(
    False, "--insecure", help="Allow plain HTTP / unverified TLS to the registry."
)


def _result(target: Any, result: Any) -> dict[str, Any]:
    return {
        "target": target.where,
        "digest": target.digest,
        "tag": result.tag,
        "manifest": result.manifest_digest,
        "added": list(result.added),
        "kept": list(result.kept),
        "referrer": result.referrer,
    }


def sign_command(
    target: str = typer.Argument(..., help=TARGET_HELP),
    key: Path = KEY_OPTION,
    insecure: bool = INSECURE_OPTION,
    referrers: bool | None = typer.Option(
        None,
        "--referrers/--no-referrers",
        help="Also store an OCI 1.1 referrer (default: when the registry has the API).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Sign an image by digest as `cosign sign --key` does (tag sha256-<hex>.sig)."""
    from nanodistro.image.signatures import open_target, sign_image
    from nanodistro.trust.cosignkey import load_signer

    signer = load_signer(key)
    with open_target(target, insecure=insecure) as image:
        result = sign_image(image, signer, referrers=referrers)
        summary = _result(image, result)
    if json_out:
        print_json(summary)
        return
    state = "signed" if result.added else "already signed"
    typer.echo(f"{state}: {summary['target']} -> {result.tag}")


def attest_command(
    target: str = typer.Argument(..., help=TARGET_HELP),
    key: Path = KEY_OPTION,
    predicate_type: str = typer.Option(
        ...,
        "--type",
        help="slsaprovenance1, spdxjson, cyclonedx, openvex (cosign's names) or a URI.",
    ),
    predicate: Path = typer.Option(..., "--predicate", help="JSON file: the predicate."),
    insecure: bool = INSECURE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Attach a signed in-toto attestation as `cosign attest --key` does (tag sha256-<hex>.att);
    the statement's subject is the image digest, named by its repository."""
    from nanodistro.image.signatures import attest_image, image_statement, open_target
    from nanodistro.trust.cosign import predicate_type_uri
    from nanodistro.trust.cosignkey import load_signer

    predicate_type_uri(predicate_type)  # an unknown name fails before the key is decrypted
    try:
        body = json.loads(predicate.read_bytes())
    except OSError as error:
        raise ConfigError(
            f"cannot read predicate ({error.strerror})", where=str(predicate)
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"predicate is not JSON ({error})", where=str(predicate)) from None
    signer = load_signer(key)
    with open_target(target, insecure=insecure) as image:
        statement = image_statement(image, predicate_type, body)
        result = attest_image(image, signer, [statement])
        summary = {**_result(image, result), "predicateType": statement["predicateType"]}
    if json_out:
        print_json(summary)
        return
    state = "attested" if result.added else "already attested"
    typer.echo(f"{state}: {summary['target']} ({statement['predicateType']}) -> {result.tag}")


def register(image_app: typer.Typer) -> None:
    """Add ``sign`` and ``attest`` to the ``image`` group."""
    image_app.command("sign")(sign_command)
    image_app.command("attest")(attest_command)
