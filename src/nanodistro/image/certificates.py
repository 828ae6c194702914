"""apko ``certificates``: inline certificates and package-provided ones joined to the CA bundles.

Mirrors apko pkg/build/certificates.go ``installCertificates``: each ``additional`` entry must be
exactly one PEM certificate; it is re-encoded, written to
``usr/local/share/ca-certificates/<name>-<sha256 of DER>.crt`` and appended (with a newline) to
every CA bundle that already exists. Installed packages that provide one of ``providers`` (exact
``provides`` entries) contribute their ``.crt``/``.pem`` files (sorted; unparsable ones skipped);
those under ``usr/share/ca-certificates/`` are also listed in ``etc/ca-certificates.conf``.
apko also adds the certificates to Java truststores (``etc/ssl/certs/java/cacerts``); that is not
done here (``image build`` reports it when such a truststore is present).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from nanodistro.errors import ImageError
from nanodistro.formats.tarball import TarEntry
from nanodistro.image.rootfs import RootFS

CA_CERTS_DIR = "usr/local/share/ca-certificates"
CA_CERTS_CONF = "etc/ca-certificates.conf"
SYSTEM_CA_CERTS_DIR = "usr/share/ca-certificates/"
CA_BUNDLES = (
    "etc/ssl/certs/ca-certificates.crt",  # Alpine/Wolfi
    "var/lib/ecs/deps/execute-command/certs/tls-ca-bundle.pem",  # AWS ECS
)
JAVA_TRUSTSTORES = ("etc/ssl/certs/java/cacerts",)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class Certificate:
    pem: bytes  # re-encoded: no text around the block, 64-character lines
    fingerprint: str  # sha256 of the DER, lowercase hex


def parse_certificate(text: bytes) -> Certificate:
    """Exactly one ``CERTIFICATE`` PEM block that parses as X.509 (ValueError otherwise)."""
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ValueError("no certificates found in PEM data")
    if len(blocks) > 1:
        raise ValueError("multiple certificates found; only one is allowed")
    kind, body = blocks[0]
    if kind != b"CERTIFICATE":
        raise ValueError(f"expected a CERTIFICATE block, got {kind.decode(errors='replace')}")
    # Imported here: cryptography.x509 costs every `image build` ~50 ms, and most images
    # configure no certificates.
    from cryptography import x509

    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
        x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"failed to parse certificate: {error}") from None
    encoded = base64.b64encode(der)
    lines = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    pem = b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"
    return Certificate(pem, hashlib.sha256(der).hexdigest())


def _set_content(fs: RootFS, path: str, data: bytes, *, mtime: int) -> None:
    """Replace a file's content in place (mode, owner and owning package kept)."""
    resolved = fs.resolve(path)
    node = fs.nodes[resolved]
    if node.entry.type == "hardlink":
        node = fs.nodes[node.entry.linkname]
    node.entry = replace(node.entry, data=data, mtime=mtime, pax_checksum=None)


def apply_certificates(
    fs: RootFS,
    additional: Iterable[tuple[str, str]],
    providers: list[str],
    packages: Iterable[tuple[list[str], list[str]]],
    *,
    mtime: int,
) -> list[str]:
    """Install the certificates; returns warnings (things apko does that are not done here).

    ``additional``: (name, PEM) pairs from the config; ``packages``: (provides, file paths) of
    every installed package in install order; ``mtime``: the image's build date."""
    certs: list[Certificate] = []
    for name, content in additional:
        try:
            cert = parse_certificate(content.encode())
        except ValueError as error:
            raise ImageError(
                f"certificate {name!r}: {error}", field="certificates.additional"
            ) from None
        if "/" in name or name in ("", ".", ".."):
            raise ImageError(
                f"certificate name {name!r} must be a plain file name",
                field="certificates.additional",
            )
        path = f"{CA_CERTS_DIR}/{name}-{cert.fingerprint}.crt"
        fs.put(TarEntry(path, "file", mode=0o644, data=cert.pem, mtime=mtime))
        certs.append(cert)
    package_files: list[str] = []
    for provides, files in packages:
        if any(p in provides for p in providers):
            package_files += [f for f in files if f.endswith((".crt", ".pem"))]
    conf_entries: list[str] = []
    for path in sorted(package_files):
        data = fs.read(path)
        if data is None:
            continue
        try:
            certs.append(parse_certificate(data))
        except ValueError:
            continue  # apko skips package files that are not one certificate
        if path.startswith(SYSTEM_CA_CERTS_DIR):
            conf_entries.append(path.removeprefix(SYSTEM_CA_CERTS_DIR))
    if conf_entries:
        conf = (fs.read(CA_CERTS_CONF) or b"") + "".join(f"{e}\n" for e in conf_entries).encode()
        if fs.get(CA_CERTS_CONF) is None:
            fs.put(TarEntry(CA_CERTS_CONF, "file", mode=0o644, data=conf, mtime=mtime))
        else:
            _set_content(fs, CA_CERTS_CONF, conf, mtime=mtime)
    if not certs:
        return []
    for bundle_path in CA_BUNDLES:
        bundle = fs.read(bundle_path)
        if bundle is None:
            continue  # apko appends only to bundles that exist
        bundle += b"".join(cert.pem + b"\n" for cert in certs)
        _set_content(fs, bundle_path, bundle, mtime=mtime)
    return [
        f"certificates: not added to the Java truststore /{path} (apko adds them)"
        for path in JAVA_TRUSTSTORES
        if fs.read(path) is not None
    ]
