"""apko ``certificates``: inline (``additional``) and package-provided (``providers``) CA certificates."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from image_testlib import Pkg, build_apk, make_key

from fixture_paths import THIRD_PARTY
from nanodistro.errors import ImageError
from nanodistro.image.apkfile import open_apk
from nanodistro.image.build import BuildRequest, build_image
from nanodistro.image.install import AssembledRoot, assemble_root
from nanodistro.imageconfig import load_config, load_config_text
from signing_keys import self_signed_cert

APKO_TESTDATA = THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata"
BUILD_DATE = 1_750_000_000


def fingerprint(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_key(tmp_path_factory.mktemp("keys"))


def assemble(config_text: str, pkgs: list[Pkg], key: object) -> AssembledRoot:
    apks = [(open_apk(build_apk(p, "x86_64", key), where=p.name), "repo") for p in pkgs]  # type: ignore[arg-type]
    return assemble_root(
        load_config_text(config_text).config,
        apks,
        apk_arch="x86_64",
        keyring={},
        runtime_repositories=[],
        world=[p.name for p in pkgs],
        source_date_epoch=0,
        build_date=BUILD_DATE,
    )


def test_additional_and_provider_certificates_join_the_bundle(key: object) -> None:
    system, inline, pkg_a, pkg_b = (self_signed_cert(n) for n in ("system", "inline", "a", "b"))
    bundle_pkg = Pkg(
        "ca-certificates-bundle",
        files={"etc/ssl/certs/ca-certificates.crt": system},
        modes={"etc/ssl/certs/ca-certificates.crt": 0o444},
    )
    custom = Pkg(
        "custom-ca",
        files={
            "usr/share/ca-certificates/extra/b.crt": pkg_b,
            "usr/local/share/ca-certificates/a.pem": pkg_a,
            "usr/local/share/ca-certificates/junk.crt": b"not a certificate\n",
        },
        provides=["custom-ca-certificates"],
    )
    unrelated = Pkg("other-ca", files={"usr/share/ca-certificates/z.crt": self_signed_cert("z")})
    # text around the block is dropped (Go pem.Encode of the decoded block)
    config = "certificates:\n  additional:\n    - name: corp\n      content: |\n"
    config += "".join(
        f"        {line}\n" for line in ["# corp root", *inline.decode().splitlines()]
    )
    config += "  providers: [custom-ca-certificates]\n"
    root = assemble(config, [bundle_pkg, custom, unrelated], key)

    written = f"usr/local/share/ca-certificates/corp-{fingerprint(inline)}.crt"
    assert root.fs.read(written) == inline
    assert root.fs.get(written).entry.mtime == BUILD_DATE  # type: ignore[union-attr]
    # inline first, then the providers' files sorted by path; each followed by a newline
    expected = system + inline + b"\n" + pkg_a + b"\n" + pkg_b + b"\n"
    bundle = root.fs.get("etc/ssl/certs/ca-certificates.crt")
    assert bundle is not None and bundle.entry.data == expected
    assert (bundle.entry.mode, bundle.entry.mtime) == (0o444, BUILD_DATE)
    # files under usr/share/ca-certificates are registered for update-ca-certificates
    assert root.fs.read("etc/ca-certificates.conf") == b"extra/b.crt\n"
    assert root.warnings == []


def test_no_bundle_is_created_when_none_is_installed(key: object) -> None:
    cert = self_signed_cert("lonely")
    body = "".join(f"        {line}\n" for line in cert.decode().splitlines())
    config = f"certificates:\n  additional:\n    - name: lonely\n      content: |\n{body}"
    root = assemble(config, [Pkg("base", files={"etc/os-release": b"ID=x\n"})], key)
    assert root.fs.get("etc/ssl/certs/ca-certificates.crt") is None
    assert root.fs.read(f"usr/local/share/ca-certificates/lonely-{fingerprint(cert)}.crt") == cert


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("two", "multiple certificates"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "CERTIFICATE block"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "failed to parse"),
        ("hello", "no certificates"),
    ],
)
def test_bad_additional_certificate_is_a_clear_error(
    key: object, content: str, message: str
) -> None:
    if content == "two":
        content = (self_signed_cert("x") + self_signed_cert("y")).decode()
    config = "certificates:\n  additional:\n    - name: bad\n      content: " + json.dumps(content)
    with pytest.raises(ImageError, match=message) as error:
        assemble(config + "\n", [Pkg("base", files={"etc/x": b""})], key)
    assert error.value.field == "certificates.additional"
    assert "'bad'" in error.value.message


def test_java_truststore_is_reported_not_silently_skipped(key: object) -> None:
    body = "".join(f"        {line}\n" for line in self_signed_cert("j").decode().splitlines())
    config = f"certificates:\n  additional:\n    - name: j\n      content: |\n{body}"
    java = Pkg("java-cacerts", files={"etc/ssl/certs/java/cacerts": b"\xfe\xed\xfe\xed"})
    root = assemble(config, [java], key)
    assert root.warnings == [
        "certificates: not added to the Java truststore /etc/ssl/certs/java/cacerts "
        "(apko adds them)"
    ]


def test_apko_certs_testdata_config_builds() -> None:
    """apko's own providers test config and packages (custom-ca-certs-1/2)."""
    loaded = load_config(APKO_TESTDATA / "apko-certs.yaml")
    result = build_image(BuildRequest(loaded=loaded, archs=["amd64"], source_date_epoch=0))
    (image,) = result.images
    fs = image.root.fs
    from nanodistro.formats.apk import read_apk

    apk = APKO_TESTDATA / "packages/x86_64/custom-ca-certs-1-1.0.0-r0.apk"
    shipped = {e.path: e.data for e in read_apk(apk.read_bytes(), where=str(apk)).entries}
    for name in ("cert-a.crt", "cert-b.crt"):
        path = f"usr/local/share/ca-certificates/{name}"
        assert fs.read(path) == shipped[path]  # the provider's files, untouched
    # pretend-baselayout ships no CA bundle: apko appends only to bundles that exist
    assert fs.get("etc/ssl/certs/ca-certificates.crt") is None
    assert fs.get("etc/ca-certificates.conf") is None  # the certs are under usr/local
